# Helpers shared by the benchmark scripts (sourced, not run).

# median_of DIGITS VALUE...: the median, with DIGITS decimals.
median_of() {
    python3 -c 'import sys,statistics; d=int(sys.argv[1]); v=[float(x) for x in sys.argv[2:]]; print(f"{statistics.median(v):.{d}f}")' "$@"
}

# json KEY: the value of KEY in the JSON object on stdin.
json() { python3 -c 'import sys,json; d=json.load(sys.stdin); print(d[sys.argv[1]])' "$1"; }

# The machine and its load, for the record.
machine_line() {
    echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ -n "${F:-}" ]; then echo "binary: $F"; fi
}

# The binary to measure: $FRESHET_BIN if set (to compare two builds in one session,
# alternating), else the README's release build of this checkout, built first.
freshet_bin() {
    if [ -n "${FRESHET_BIN:-}" ]; then
        echo "$FRESHET_BIN"
        return
    fi
    cargo build --release --locked --quiet >&2
    echo "$PWD/target/release/freshet"
}
