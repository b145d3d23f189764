/*
 * prescan.c: a pass over the file text before libconfuse sees it, to work around
 * what libconfuse 3.3 (Debian 12) gets wrong:
 *
 *  - Line numbers drift after comments: every "# ..." line adds two extra lines to
 *    cfg->line and every end of a block comment one, so every error after a comment
 *    would name the wrong line. We blank comments out (newlines kept) so the lexer never sees
 *    one; a comment is pure whitespace to the grammar anyway.
 *  - A file that ends inside a block comment or a "string", or inside a section whose
 *    '}' is missing, parses without error and silently drops what follows. We refuse
 *    these, naming the line where the comment, string or section opened.
 *  - A NUL byte ends libconfuse's strings early; no text file has one.
 *  - A malformed function call, as in include("a" "b"), leaks the arguments already
 *    read; we refuse it before libconfuse sees it.
 *
 * It also blanks ';' outside strings, so that `tls { ca = "..."; cert = "..." }` works
 * as people write it: libconfuse takes a ';' for a key named ";".
 *
 * The scanner mirrors the tokens of libconfuse's lexer.l that matter here: quoted
 * strings ("" with backslash escapes, '' likewise), ${VAR} references (which, there,
 * run to the next '}' even across quotes), unquoted words (any run of characters but
 * WORD_STOP, where ';' is ours: a '/' inside a word, as in a//b, does not start a
 * comment), and comments
 * that start where a token could start: "#", "//" to the end of the line, and block
 * comments from slash-star to star-slash.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "conf-int.h"

#define WORD_STOP	" #\"'\t\n\r={}()+,*;"
#define BRACE_DEPTH	32

struct scan {
	char *s;
	size_t i, len;
	unsigned int line;
};

static bool at(const struct scan *sc, size_t off, char c)
{
	return sc->i + off < sc->len && sc->s[sc->i + off] == c;
}

/* Moves past one character, blanking it when asked; newlines are kept and counted. */
static void step(struct scan *sc, bool blank)
{
	if (sc->s[sc->i] == '\n')
		sc->line++;
	else if (blank)
		sc->s[sc->i] = ' ';
	sc->i++;
}

/* At "${" with a '}' somewhere after it: the lexer takes all of it as one reference. */
static bool skip_env_ref(struct scan *sc)
{
	const char *end;

	if (!at(sc, 0, '$') || !at(sc, 1, '{'))
		return false;
	end = memchr(sc->s + sc->i, '}', sc->len - sc->i);
	if (!end)
		return false;
	while (sc->s + sc->i <= end)
		step(sc, false);
	return true;
}

/* At an opening quote; false if the file ends before the closing one. */
static bool skip_string(struct scan *sc)
{
	char quote = sc->s[sc->i];

	step(sc, false);
	while (sc->i < sc->len) {
		if (sc->s[sc->i] == quote) {
			sc->i++;
			return true;
		}
		if (quote == '"' && skip_env_ref(sc))
			continue;
		if (sc->s[sc->i] == '\\' && sc->i + 1 < sc->len)
			step(sc, false);
		step(sc, false);
	}
	return false;
}

static bool skip_block_comment(struct scan *sc)
{
	step(sc, true);
	step(sc, true);
	while (sc->i < sc->len) {
		if (at(sc, 0, '*') && at(sc, 1, '/')) {
			step(sc, true);
			step(sc, true);
			return true;
		}
		step(sc, true);
	}
	return false;
}

/* Tokens as libconfuse's parser sees them; TOK_NONE for what it never sees. */
enum { TOK_NONE, TOK_STR, TOK_ERR_COMMENT, TOK_ERR_STRING };

/* Moves past one token (or blank, comment, ignored character) and says which. */
static int next_token(struct scan *sc)
{
	char c = sc->s[sc->i];

	if (c == '#' || (c == '/' && at(sc, 1, '/'))) {
		while (sc->i < sc->len && sc->s[sc->i] != '\n')
			step(sc, true);
		return TOK_NONE;
	}
	if (c == '/' && at(sc, 1, '*'))
		return skip_block_comment(sc) ? TOK_NONE : TOK_ERR_COMMENT;
	if (c == '"' || c == '\'')
		return skip_string(sc) ? TOK_STR : TOK_ERR_STRING;
	if (skip_env_ref(sc))
		return TOK_STR;
	if (c == ';') {
		step(sc, true);
		return TOK_NONE;
	}
	if (strchr("{}(),=", c)) {
		sc->i++;
		return c;
	}
	if (c == '+' && at(sc, 1, '=')) {
		sc->i += 2;
		return '+';
	}
	if (!strchr(WORD_STOP, c)) {
		while (sc->i < sc->len && !strchr(WORD_STOP, sc->s[sc->i]))
			sc->i++;
		return TOK_STR;
	}
	step(sc, false);	/* blanks, and '*', '\r' and a lone '+' the lexer drops */
	return TOK_NONE;
}

/*
 * The argument list of a function call, as libconfuse parses it: ( [STR {, STR}] [,] ).
 * Checked here because libconfuse leaks the arguments it collected when the list is
 * malformed (its funcopt values are freed only when the function is called).
 */
static bool args_ok(int *args, int tok)
{
	switch (*args) {
	case 0:		/* not in a call */
		*args = tok == '(';
		return true;
	case 1:		/* after '(' or ',' */
		*args = tok == TOK_STR ? 2 : 0;
		return tok == TOK_STR || tok == ')';
	default:	/* after an argument */
		*args = tok == ',' ? 1 : 0;
		return tok == ',' || tok == ')';
	}
}

static int fail(unsigned int *line, unsigned int at_line, const char **why, const char *msg)
{
	*line = at_line;
	*why = msg;
	return -EINVAL;
}

/* The line of the first NUL byte, or 0. */
static unsigned int nul_line(const char *text, size_t len)
{
	const char *nul = memchr(text, 0, len);
	unsigned int line = 1;

	if (!nul)
		return 0;
	for (const char *p = text; p < nul; p++)
		line += *p == '\n';
	return line;
}

/*
 * Blanks the comments of text (len bytes plus a NUL) in place and checks it as the
 * top comment says. 0, or -EINVAL with *line and *why.
 */
int conf__prescan(char *text, size_t len, unsigned int *line, const char **why)
{
	struct scan sc = { .s = text, .len = len, .line = 1 };
	unsigned int open[BRACE_DEPTH], depth = 0, start, call = 0;
	int tok, args = 0;

	if ((start = nul_line(text, len)))
		return fail(line, start, why, "NUL byte in the file (is it a text file?)");
	while (sc.i < sc.len) {
		start = sc.line;
		tok = next_token(&sc);
		if (tok == TOK_ERR_COMMENT)
			return fail(line, start, why, "unterminated /* comment");
		if (tok == TOK_ERR_STRING)
			return fail(line, start, why, "unterminated string");
		if (tok == TOK_NONE)
			continue;
		if (tok == '(')
			call = start;
		if (!args_ok(&args, tok))
			return fail(line, start, why, "syntax error in the arguments of a "
				    "function call: expected \"ARGUMENT\", ',' or ')'");
		if (tok == '{' && depth < BRACE_DEPTH)
			open[depth] = start;
		if (tok == '{')
			depth++;
		else if (tok == '}' && depth)
			depth--;
	}
	if (args)
		return fail(line, call, why, "'(' is never closed (missing ')')");
	if (depth)
		return fail(line, open[depth <= BRACE_DEPTH ? depth - 1 : BRACE_DEPTH - 1], why,
			    "'{' is never closed (missing '}')");
	return 0;
}
