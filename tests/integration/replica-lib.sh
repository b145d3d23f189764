# shellcheck shell=dash
# replica-lib.sh: sourced by the replication scenarios (replica-*.sh). Two nodes as two
# network namespaces joined by a veth pair, addresses only inside them, and the test
# certificates, made here with openssl (no key is ever committed).
#
#   rep_init NAME            T, a new /tmp/hacd-NAME.XXXXXX, and NSA and NSB, names for
#                            the two nodes' namespaces unique with it (not with $$: a
#                            scenario may be pid 1 of a pid namespace of its own)
#   rep_nodes NSA NSB NET    namespaces NSA (NET.1, dev va) and NSB (NET.2, dev vb)
#   rep_nodes_del NSA NSB    delete both (in cleanup traps; never fails)
#   rep_ca DIR NAME          a self-signed CA: DIR/NAME.crt, DIR/NAME.key
#   rep_cert DIR NAME CA     DIR/NAME.{crt,key}, CN and subjectAltName NAME, signed by CA
#   rep_conf NODE NET PORT   $T/NODE.conf: alpha (NET.1) and beta (NET.2) listen on PORT
#                            and name each other; the caller appends its services
#   rep_fail MSG...          FAIL: MSG, the tail of every $T/*.log, exit 1; also the
#                            scenarios' fail()
#   rep_nodes_kill NSA NSB   kill -9 every process in both namespaces, reap, delete them
#   rep_teardown [KEEP]      rep_nodes_kill $NSA $NSB, and $T removed unless KEEP is set
#                            (a trap on EXIT of the two-node scenarios)
#   rep_hacds_stop NODE...   SIGTERM the hacd of each NODE (APID, BPID): each must exit 0
#   rep_catalogs_verify NODE...   hactl catalog verify of each NODE's catalog
#   rep_certs                $T/tls: CA ca, certificates alpha and beta of it
#   rep_setup NET            nodes $NSA and $NSB on NET (rep_nodes), and rep_certs
#   rep_kill PID...          kill -9 and reap each PID (empty ones skipped; never fails)
#   rep_drv_conf NODE STATE CERT ALPHA BETA PIDFILE [BANDWIDTH]
#                            the driver's config of NODE on stdout: STATE under $T,
#                            CERT's certificate, one service "victim" (PIDFILE); beta
#                            listens at BETA and names alpha at ALPHA, alpha names beta
#   rep_start_beta NS        the driver serving as beta in NS ("": here), $T/beta.conf,
#                            output in $T/beta.out and .log; returns once it listens,
#                            its pid in SERVE_PID
#   rep_victim VAR RESULT MIB   $VICTIM RESULT MIB in a session of its own, in $T, its
#                            pid in VAR at once; returns once it reports ready in RESULT
#   rep_dump [ARGS...]       hactl dump ARGS of $VPID into $T/dump, added to alpha's
#                            catalog with the driver: the generation on stdout
#   rep_victim_ok RESULT WHAT   the victim's verdict in RESULT (after its SIGTERM) is
#                            ok, or FAIL: victim WHAT
#   rep_wait N CMD...        CMD until it succeeds, at most N times 0.05 s apart;
#                            returns 1 when it never did
# They use the caller's $T, $DRV, $HACTL, $VICTIM and fail().

rep_init() {
	T=$(mktemp -d "/tmp/hacd-$1.XXXXXX")
	NSA=hacd-$1-a-${T##*.}
	NSB=hacd-$1-b-${T##*.}
}

rep_nodes() {
	ip netns add "$1"
	ip netns add "$2"
	ip link add va netns "$1" type veth peer name vb netns "$2"
	ip -n "$1" addr add "$3.1/24" dev va
	ip -n "$2" addr add "$3.2/24" dev vb
	ip -n "$1" link set lo up
	ip -n "$2" link set lo up
	ip -n "$1" link set va up
	ip -n "$2" link set vb up
}

rep_nodes_del() {
	ip netns del "$1" 2>/dev/null || true
	ip netns del "$2" 2>/dev/null || true
	# Run in a private mount namespace (unshare --mount-proc), the names' files in
	# /run/netns can outlive it, empty: remove them (a live mount refuses, EBUSY).
	rm -f "/run/netns/$1" "/run/netns/$2" 2>/dev/null || true
}

rep_ca() {
	[ -d "$1" ] || mkdir -m 700 "$1"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj "/CN=hacd test $2" -keyout "$1/$2.key" -out "$1/$2.crt" 2>/dev/null
}

rep_cert() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
		-keyout "$1/$2.key" -out "$1/$2.csr" 2>/dev/null
	printf 'subjectAltName=DNS:%s\n' "$2" > "$1/$2.ext"
	openssl x509 -req -in "$1/$2.csr" -CA "$1/$3.crt" -CAkey "$1/$3.key" \
		-CAcreateserial -days 1 -extfile "$1/$2.ext" -out "$1/$2.crt" 2>/dev/null
}

rep_conf() {
	case $1 in alpha) me=1 other=beta them=2 ;; *) me=2 other=alpha them=1 ;; esac
	cat > "$T/$1.conf" <<EOF
node = "$1"
state_dir = "$T/$1"
control_socket = "$T/$1.sock"
listen = "$2.$me:$3"
tls { ca = "$T/tls/ca.crt"; cert = "$T/tls/$1.crt"; key = "$T/tls/$1.key" }
peer "$other" { address = "$2.$them:$3" }
EOF
}

rep_fail() {
	echo "FAIL: $*" >&2
	for f in "$T"/*.log; do
		[ -f "$f" ] && { echo "--- $f:" >&2; tail -n 30 "$f" >&2; }
	done
	exit 1
}

fail() { rep_fail "$@"; }

rep_nodes_kill() {
	for ns in "$1" "$2"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null || true
		done
	done
	wait 2>/dev/null || true
	rep_nodes_del "$1" "$2"
}

rep_teardown() {
	rep_nodes_kill "$NSA" "$NSB"
	[ -n "${1:-}" ] || rm -rf "$T"
}

rep_hacds_stop() {
	for n in "$@"; do
		if [ "$n" = alpha ]; then p=$APID; APID=; else p=$BPID; BPID=; fi
		kill -TERM "$p"
		wait "$p" || fail "hacd $n exit status $?"
	done
}

rep_catalogs_verify() {
	for n in "$@"; do
		"$HACTL" catalog verify "$T/$n/catalog.db" > "$T/verify.out" 2>&1 ||
			fail "$n's catalog: $(cat "$T/verify.out")"
	done
}

# hacd of node NODE (alpha or beta) in namespace NS, from $T/NODE.conf, logging to
# $T/NODE.log; returns once its control socket is up, its pid in APID or BPID.
# Uses the caller's $HACD, $T and fail().
start_hacd() { # start_hacd NODE NS
	ip netns exec "$2" "$HACD" -f "$T/$1.conf" >> "$T/$1.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		[ -S "$T/$1.sock" ] && break
		kill -0 "$pid" 2>/dev/null || fail "hacd $1 exited at start"
		sleep 0.05
	done
	[ -S "$T/$1.sock" ] || fail "hacd $1: no control socket"
	if [ "$1" = alpha ]; then APID=$pid; else BPID=$pid; fi
}

rep_certs() {
	rep_ca "$T/tls" ca
	rep_cert "$T/tls" alpha ca
	rep_cert "$T/tls" beta ca
}

rep_setup() {
	rep_nodes "$NSA" "$NSB" "$1"
	rep_certs
}

rep_kill() {
	for p in "$@"; do
		[ -n "$p" ] || continue
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

rep_drv_conf() {
	cat <<EOF
node = "$1"
state_dir = "$T/$2"
control_socket = "$T/$2.sock"
tls { ca = "$T/tls/ca.crt"; cert = "$T/tls/$3.crt"; key = "$T/tls/$3.key" }
service "victim" {
  pidfile = "$6"
}
EOF
	if [ "$1" = beta ]; then
		echo "listen = \"$5\""
		echo "peer \"alpha\" { address = \"$4\" }"
	else
		echo "peer \"beta\" { address = \"$5\"${7:+; bandwidth = \"$7\"} }"
	fi
}

rep_start_beta() {
	# Not through a function of ours: SERVE_PID must be the driver itself.
	if [ -n "$1" ]; then
		ip netns exec "$1" "$DRV" -f "$T/beta.conf" serve >> "$T/beta.out" 2>> "$T/beta.log" &
	else
		"$DRV" -f "$T/beta.conf" serve >> "$T/beta.out" 2>> "$T/beta.log" &
	fi
	# shellcheck disable=SC2034  # the caller's, for its cleanup
	SERVE_PID=$!
	rep_wait 100 grep -qs listening "$T/beta.out" || fail "beta does not listen"
}

rep_victim() {
	(cd "$T" && exec setsid "$VICTIM" "$2" "$3" </dev/null >/dev/null 2>&1) &
	eval "$1=\$!"
	rep_wait 200 grep -qs ready "$2" || fail "victim not ready"
}

rep_dump() {
	rm -rf "$T/dump"
	# shellcheck disable=SC2153  # the caller's victim
	"$HACTL" dump -t "$VPID" -D "$T/dump" "$@" > /dev/null || fail "hactl dump"
	"$DRV" -f "$T/alpha.conf" add victim "$T/dump"
}

rep_victim_ok() {
	rep_wait 200 test -s "$1" || true
	grep -q "^ok [1-9]" "$1" || fail "victim $2: $(cat "$1" 2>/dev/null)"
}

rep_wait() {
	rep_n=$1
	shift
	for _ in $(seq "$rep_n"); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
