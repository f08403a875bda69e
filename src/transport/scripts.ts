/**
 * The remote side of the store, as POSIX sh scripts run with `sh -c SCRIPT pyferry ARGS...`:
 * only sh, tar and coreutils are needed there. Every script starts by resolving the store root
 * ($1; empty means the default under the user's cache folder) into $r.
 *
 * The store under $r:
 *   objects/ab/cdef...[.x]  file contents by sha256 (".x": executable), read-only, shared by
 *                           hardlinks; an object with one link is used by nothing
 *   envs/<key>/             assembled environments, complete (renamed into place whole)
 *   runs/<id>/              a run's working folder (the app's files), runs/<id>.pid while
 *                           it runs, runs/<id>.env naming the environment it uses
 *   names/<name>            a named pack: the environment key it keeps
 *   tmp/<tx>/, tmp/<tx>.pid objects being received, and the receiving shell's pid
 *   tmp/<tx>.gz             a compressed stream, kept until it is unpacked
 *
 * Exit codes the client understands are in REMOTE_EXIT.
 */

export const REMOTE_EXIT = {
  /** The store root cannot be created or entered. */
  noRoot: 90,
  /** tar failed while receiving (connection lost, disk full, missing objects). */
  tarFailed: 91,
  /** The environment a run needs is not assembled. */
  envMissing: 92,
  /** Objects the run needs are missing; their ids are on stdout. */
  objectsMissing: 94,
  /** The run's folder does not exist. */
  noRun: 95,
  /** tar is not installed there. */
  noTar: 96,
  /** Another gc is running. */
  busy: 97,
  /** The stream is gzip-compressed and gzip is not installed there (nothing was read). */
  noGzip: 98,
} as const;

export const PRELUDE = `
r=$1; shift
case $r in
  "") r=\${XDG_CACHE_HOME:-$HOME/.cache}/pyferry-remote ;;
  "~") r=$HOME ;;
  "~/"*) r=$HOME/\${r#"~/"} ;;
esac
umask 022
# Tests are builtins; mkdir is a process, worth saving on every session.
[ -d "$r/objects" ] && [ -d "$r/envs" ] && [ -d "$r/runs" ] && [ -d "$r/tmp" ] && [ -d "$r/names" ] ||
  mkdir -p "$r/objects" "$r/envs" "$r/runs" "$r/tmp" "$r/names" 2>/dev/null
cd "$r" 2>/dev/null || { echo "pyferry: cannot use the store folder $r" >&2; exit ${REMOTE_EXIT.noRoot}; }
command -v tar >/dev/null 2>&1 || { echo "pyferry: tar is not installed" >&2; exit ${REMOTE_EXIT.noTar}; }
# Whether folder $1 holds anything but dotfiles (the store makes none), without a process.
has_any() { for x in "$1"/*; do [ -e "$x" ] || [ -L "$x" ] && return 0; break; done; return 1; }
# Whether a gc holds the store. The lock of a gc that is gone (killed) is taken away; one whose
# gc has not yet written its pid counts for a minute. Taking it is one rename, and a lock that
# turns out to be a new gc's (taken meanwhile by another) is put back.
gc_busy() {
  [ -d gc.lock ] || return 1
  gl_p=""
  if [ -e gc.lock/pid ] && read -r gl_p < gc.lock/pid; then kill -0 "$gl_p" 2>/dev/null && return 0
  elif [ -z "$(find gc.lock -maxdepth 0 -mmin +1 2>/dev/null)" ]; then return 0; fi
  gl_s=gc.lock.stale.$$
  mv -T gc.lock "$gl_s" 2>/dev/null || return 0
  if [ -e "$gl_s/pid" ] && read -r gl_q < "$gl_s/pid" && [ "$gl_q" != "$gl_p" ] && kill -0 "$gl_q" 2>/dev/null; then
    mv -T "$gl_s" gc.lock 2>/dev/null || rm -rf "$gl_s"
    return 0
  fi
  rm -rf "$gl_s"; return 1
}
`;

/**
 * What a receiver that is gone (connection lost, client killed) left, kept only where it is
 * whole: objects under tmp/<tx>/ only if their bytes hash to their name, and an environment's
 * new files (envs/.tmp-<tx>/) only if they match tmp/<tx>.sums, published then by the links of
 * tmp/<tx>.links. A partial file is never used. The receiver's own pid, $1, counts as gone.
 * sh has no local variables: the ones set here (p, d, de, pid, h, f, o, l) are the caller's.
 */
export const SALVAGE = `
salvage() {
  for p in tmp/*.pid; do
    [ -e "$p" ] || continue
    d=\${p%.pid}; de=envs/.tmp-\${d#tmp/}
    read -r pid 2>/dev/null < "$p"
    if [ -n "$pid" ] && [ "$pid" != "$1" ] && kill -0 "$pid" 2>/dev/null; then continue; fi
    if [ -d "$d" ]; then
      find "$d" -type f -exec sha256sum {} + 2>/dev/null | while read -r h f; do
        o=\${f#"$d"/}; o=\${o%.x}
        [ "\${o%%/*}\${o#*/}" = "$h" ] || rm -f "$f"
      done
      cp -aln "$d"/. objects/ 2>/dev/null
    fi
    if [ -d "$de" ] && [ -f "$d.sums" ] && [ -f "$d.links" ]; then
      sha256sum -c "$d.sums" 2>/dev/null | while IFS= read -r l; do
        case $l in *": FAILED") rm -f "\${l%: FAILED}" ;; esac
      done
      tar -x -k -o -f "$d.links" 2>/dev/null
    fi
    rm -rf "$d" "$p" "$de" "$d.links" "$d.sums" "$d.end" "$d.gz"
  done
}
`;

/**
 * Describe the interpreter $py with the probe script $probe (data/python/probe.py): its line,
 * then "real PATH". A bare version ("3.11") is looked for on PATH as python3.11.
 */
export const PROBE_PYTHON = `
case $py in */*) ;; *) py=$(command -v "python$py" 2>/dev/null || command -v "$py" 2>/dev/null || echo "$py") ;; esac
# Python 2.7 has no -I; what the second try says on stderr is the reason, when both fail.
"$py" -I -c "$probe" 2>/dev/null || "$py" -E -s -c "$probe" && echo "real $(readlink -f "$py")"
`;

/** $1: an interpreter (path or version), $2: the probe script. See PROBE_PYTHON. */
export const INTERPRETER = `${PRELUDE}
py=$1; probe=$2
${PROBE_PYTHON}
`;

/** Facts about the remote, one key=value per line. */
export const PROBE = `${PRELUDE}
echo "root=$r"
echo "arch=$(uname -m)"
echo "os=$(uname -s)"
g=$(getconf GNU_LIBC_VERSION 2>/dev/null) && echo "glibc=\${g#glibc }"
for p in python3 python; do
  c=$(command -v $p 2>/dev/null) && { echo "python=$c"; break; }
done
command -v setsid >/dev/null 2>&1 && echo "setsid=yes"
df -Pk . 2>/dev/null | { read -r _; read -r _ _ _ a _; echo "free_kb=$a"; }
`;

/**
 * $1: an environment key (or ""), $2: a pack name (or ""). stdin: object ids, one per line;
 * stdout: "env=complete" when environment $1 is assembled (naming it $2 then), else those of
 * the objects the store lacks. What a receiver that died left behind is salvaged first, so
 * that it is not asked for again.
 */
export const NEED = `${PRELUDE}${SALVAGE}
k=$1; name=$2
if [ -n "$k" ] && [ -e "envs/$k/.pyferry-complete" ]; then
  cat >/dev/null
  echo env=complete
  [ -n "$name" ] && printf '%s\\n' "$k" > "names/$name"
  exit 0
fi
salvage
cd objects || exit ${REMOTE_EXIT.noRoot}
# An empty store lacks everything: no need to look at each id.
if ! has_any .; then cat >/dev/null; echo "*"; exit 0; fi
while IFS= read -r o; do [ -e "$o" ] || printf '%s\\n' "$o"; done
`;

/**
 * $1: environment key, $2: pack name (or ""), then object ids. Says whether the environment
 * is assembled ("env=complete", and names it then) or not ("env=absent"), and which of the
 * objects are missing ("missing=ID").
 */
export const STATUS = `${PRELUDE}
k=$1; name=$2; shift 2
if [ -e "envs/$k/.pyferry-complete" ]; then
  echo env=complete
  [ -n "$name" ] && printf '%s\\n' "$k" > "names/$name"
else
  echo env=absent
fi
for o in "$@"; do [ -e "objects/$o" ] || echo "missing=$o"; done
exit 0
`;

/**
 * $1: a transfer id, $2: an environment key (or ""), $3: a pack name (or ""), $4: "gz" when
 * the stream is gzip-compressed, else "". stdin: one tar, extracted here. Without a key:
 * objects under tmp/<id>/ab/cdef...[.x]. With a key, first tmp/<id>.links and tmp/<id>.sums,
 * then objects the environment does not hold under tmp/<id>/, then the environment under
 * envs/.tmp-<id>/ (always last: tmp/<id>.end): files the store has as hardlinks to objects/,
 * new ones as files (written once, there). When the whole stream arrived, the new files are
 * published as objects by the hardlinks in tmp/<id>.links, the other objects are linked into
 * objects/, and the environment is renamed into envs/<key>; otherwise what arrived whole is
 * salvaged at once (or by the next transfer, if this shell was killed) and nothing else kept.
 */
export const RECEIVE = receiveThen("exit 0");

/**
 * RECEIVE, followed in the same session by `then`, a script body that gets the arguments
 * after RECEIVE's four (a deploy's switch). It runs only once the environment is assembled,
 * and its exit codes must differ from RECEIVE_FAILED.
 */
export function receiveThen(then: string): string {
  return `${PRELUDE}${SALVAGE}
after() {
${then}
}
tx=$1; k=$2; name=$3; z=$4; shift 4; t=tmp/$tx; e=envs/.tmp-$tx
if [ "$z" = gz ] && ! command -v gzip >/dev/null 2>&1; then
  echo "pyferry: gzip is not installed" >&2; exit ${REMOTE_EXIT.noGzip}
fi
# The stream, unpacked. A compressed one is first taken whole into a file: sshd keeps what a
# slow reader has not taken yet in a buffer it grows by copying, which on busy hosts cost sshd
# more CPU than gzip spent. In the pipe, the status is tar's: a cut stream gives its whole part.
untar() { if [ "$z" = gz ]; then cat > "$t.gz"; gzip -dc < "$t.gz" | tar -x -o -f -; else tar -x -o -f -; fi; }
salvage
if [ -n "$k" ] && [ -e "envs/$k/.pyferry-complete" ]; then cat >/dev/null; after "$@"; fi
mkdir "$t" && echo $$ > "$t.pid" || exit ${REMOTE_EXIT.noRoot}
# -o: ownership is this user's (root would otherwise chown every file to the archive's).
# tar takes a stream cut between two members for a whole one: the stream's last member,
# tmp/<tx>.end, says it arrived to the end.
if untar && [ -e "$t.end" ]; then
  # Objects are published with links that never replace one (a reader may be linking it): an
  # object that could not be published is simply missing, and sent again when needed. Whole
  # folders the store does not have yet move in with one rename each.
  [ -f "$t.links" ] && tar -x -k -o -f "$t.links" 2>/dev/null
  if has_any "$t"; then
    mv "$t"/* objects/ 2>/dev/null
    cp -aln "$t"/. objects/ 2>/dev/null
  fi
  rm -rf "$t" "$t.pid" "$t.links" "$t.sums" "$t.end" "$t.gz"
  if [ -n "$k" ]; then
    : > "$e/.pyferry-complete"
    # A copy without its mark (a deploy found it changed: fleet's DISCARD) is replaced here,
    # between two renames, so that a link to it is never left dangling for a whole transfer.
    [ -d "envs/$k" ] && [ ! -e "envs/$k/.pyferry-complete" ] && mv -T "envs/$k" "envs/.discard-$k-$$"
    mv -T "$e" "envs/$k" 2>/dev/null || rm -rf "$e"
    rm -rf "envs/.discard-$k-$$"
    [ -e "envs/$k/.pyferry-complete" ] || exit ${REMOTE_EXIT.tarFailed}
    [ -n "$name" ] && printf '%s\\n' "$k" > "names/$name"
  fi
  after "$@"
fi
salvage $$
exit ${REMOTE_EXIT.tarFailed}
`;
}

/** The exit codes of RECEIVE that mean nothing was received (then never ran). */
export const RECEIVE_FAILED: ReadonlySet<number> = new Set([
  REMOTE_EXIT.noRoot,
  REMOTE_EXIT.tarFailed,
  REMOTE_EXIT.noTar,
  REMOTE_EXIT.noGzip,
]);

/**
 * $1: environment key, $2: run id, $3: pack name or "". stdin: the object ids the run's files
 * use, one per line, an empty line, then a tar of runs/<id>/. Checks everything first, so
 * that a run starts only on a complete environment and a complete set of files.
 */
export const PREPARE_RUN = `${PRELUDE}
k=$1; id=$2; name=$3
# Registered before looking, so that a gc starting now keeps the environment; one already
# running is waited for.
printf '%s\\n' "$k" > "runs/$id.env"
while gc_busy; do sleep 1; done
fail() { rm -f "runs/$id.env"; cat >/dev/null; exit "$1"; }
[ -e "envs/$k/.pyferry-complete" ] || fail ${REMOTE_EXIT.envMissing}
missing=0
while IFS= read -r o && [ -n "$o" ]; do
  [ -e "objects/$o" ] || { printf '%s\\n' "$o"; missing=1; }
done
[ $missing = 0 ] || fail ${REMOTE_EXIT.objectsMissing}
# runs/<id>.end, the stream's last member, says it was not cut between two members.
if ! tar -x -f - || [ ! -e "runs/$id.end" ]; then
  rm -rf "runs/$id" "runs/$id.end"; fail ${REMOTE_EXIT.tarFailed}
fi
rm -f "runs/$id.end"
[ -n "$name" ] && printf '%s\\n' "$k" > "names/$name"
exit 0
`;

/**
 * $1: run id, $2: environment key, $3: pack name or "", $4: how many K=V settings follow,
 * then the settings, then the command's arguments (the interpreter is the environment's).
 *
 * stdin starts with the run folder's entries, one per line up to an empty line ("d PATH",
 * "f OBJECT PATH", "e PATH" / "x PATH" for empty files), made here with ln and mkdir; a
 * folder already made by PREPARE_RUN comes with no entries. After that, stdin is the
 * program's. Until the program starts, stderr speaks to the client: "pyferry:env-missing",
 * "pyferry:missing OBJECT" (with exit 92/94, nothing created), then "pyferry:ready".
 *
 * The program gets its own process group (when setsid exists) so that stopping it stops its
 * children too; its pid is in runs/<id>.pid while it runs. The settings reach the program only
 * (through env), never this script's own variables. A stop asked for before the program runs
 * (runs/<id>.stop, see SIGNAL_RUN) keeps it from starting. The exit status is the program's
 * (128+N after signal N).
 */
export const RUN = `${PRELUDE}
id=$1; k=$2; name=$3; n=$4; shift 4
e=$r/envs/$k; pp=$PPID
printf '%s\\n' "$k" > "runs/$id.env"
fail() { rm -f "$r/runs/$id.env" "$r/runs/$id.stop"; exit "$1"; }
# Stopped before the program started: the status a shell gives for that signal.
stopped() {
  [ -e "$r/runs/$id.stop" ] && read -r s < "$r/runs/$id.stop" || return 1
  case $s in HUP) fail 129 ;; INT) fail 130 ;; *) fail 143 ;; esac
}
while gc_busy; do stopped; sleep 1; done
[ -e "$e/.pyferry-complete" ] || { echo "pyferry:env-missing" >&2; fail ${REMOTE_EXIT.envMissing}; }
entries=""; missing=0
while IFS= read -r line && [ -n "$line" ]; do
  case $line in
    "f "*) o=\${line#f }; o=\${o%% *}
      [ -e "objects/$o" ] || { echo "pyferry:missing $o" >&2; missing=1; } ;;
  esac
  entries="$entries$line
"
done
[ $missing = 0 ] || fail ${REMOTE_EXIT.objectsMissing}
mkdir -p "runs/$id" || fail ${REMOTE_EXIT.noRun}
if [ -n "$entries" ]; then
  # An object that vanished since the check (a concurrent gc) is reported like a missing one.
  lost=$(printf '%s' "$entries" | while IFS= read -r line; do
    p=\${line#? }
    case $line in
      "d "*) mkdir -p "runs/$id/$p" ;;
      "f "*) o=\${p%% *}; ln "objects/$o" "runs/$id/\${p#* }" 2>/dev/null || echo "pyferry:missing $o" ;;
      "e "*) : > "runs/$id/$p" ;;
      "x "*) : > "runs/$id/$p"; chmod +x "runs/$id/$p" ;;
    esac
  done)
  if [ -n "$lost" ]; then printf '%s\\n' "$lost" >&2; rm -rf "runs/$id"; fail ${REMOTE_EXIT.objectsMissing}; fi
fi
[ -n "$name" ] && printf '%s\\n' "$k" > "names/$name"
cd "runs/$id" 2>/dev/null || { echo "pyferry: the run folder runs/$id is gone" >&2; fail ${REMOTE_EXIT.noRun}; }
# "$@" becomes: the settings, the interpreter, its arguments (for env, which sets them).
i=0; all=$#
for a in "$@"; do
  [ $i = "$n" ] && set -- "$@" "$e/bin/python"
  set -- "$@" "$a"; i=$((i + 1))
done
[ $i = "$n" ] && set -- "$@" "$e/bin/python"
shift "$all"
export VIRTUAL_ENV="$e" PATH="$e/bin:$PATH"
# Its output goes down a pipe, where Python would hold it back in a buffer: live instead, as on
# a terminal (a --env PYTHONUNBUFFERED= given by the user comes after, and wins).
export PYTHONUNBUFFERED=1
unset PYTHONHOME
# A background command starts with SIGINT and SIGQUIT ignored; coreutils' env puts them back,
# so that Ctrl-C reaches the program as KeyboardInterrupt.
dflt=""; env --default-signal=INT,QUIT true 2>/dev/null && dflt="--default-signal=INT,QUIT"
group=""; command -v setsid >/dev/null 2>&1 && group=setsid
stopped
echo "pyferry:ready" >&2
# A background command's stdin is /dev/null unless redirected from a saved copy.
exec 3<&0
$group env $dflt "$@" <&3 3<&- &
p=$!
exec 3<&-
echo "$p" > "$r/runs/$id.pid"
stop() { kill -TERM -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; }
trap stop HUP TERM INT
# A stop asked for while the program was being started.
if [ -e "$r/runs/$id.stop" ] && read -r s < "$r/runs/$id.stop"; then kill -"$s" -"$p" 2>/dev/null || kill -"$s" "$p" 2>/dev/null; fi
# If the connection drops, sshd goes and nobody will ever stop the program: the watchdog does.
( while kill -0 "$pp" 2>/dev/null && kill -0 "$p" 2>/dev/null; do sleep 1; done
  kill -0 "$p" 2>/dev/null && stop ) </dev/null >/dev/null 2>&1 &
w=$!
while :; do
  wait "$p"; rc=$?
  kill -0 "$p" 2>/dev/null || break
done
kill "$w" 2>/dev/null
rm -f "$r/runs/$id.pid" "$r/runs/$id.stop"
# The last line says the program ended, so a session cut short is told from an exit of 255.
echo "pyferry:exit $rc" >&2
exit $rc
`;

/**
 * $1: run id, $2: signal name. Signals the run's process group (or the process); before the
 * program runs, leaves runs/<id>.stop for RUN, which then does not start it (or stops it at once).
 */
export const SIGNAL_RUN = `${PRELUDE}
# Only for a run still registered: gc clears the mark with the run.
[ -e "runs/$1.env" ] && printf '%s\\n' "$2" > "runs/$1.stop"
read -r p 2>/dev/null < "runs/$1.pid" || exit 0
kill -"$2" -"$p" 2>/dev/null || kill -"$2" "$p" 2>/dev/null
exit 0
`;

/** $1: run id, then paths relative to the run folder. stdout: a tar of them. */
export const FETCH = `${PRELUDE}
cd "runs/$1" 2>/dev/null || exit ${REMOTE_EXIT.noRun}
shift
for f in "$@"; do [ -e "$f" ] || echo "pyferry: $f does not exist" >&2; done
tar -c -f - -- "$@"
`;

/**
 * $1: run id (or ""), $2: environment key to drop too (or ""), $3: pack name (or ""). A name
 * is dropped with the finished runs of its environment, and that environment too. What a
 * running program uses, or another name keeps, stays. Prints what it removed.
 */
export const CLEAN = `${PRELUDE}
id=$1; k=$2; name=$3; runs=0; envs=0
live() { read -r p 2>/dev/null < "runs/$1.pid" && kill -0 "$p" 2>/dev/null; }
if [ -n "$name" ]; then
  [ -e "names/$name" ] || { echo "pyferry: nothing is named $name there" >&2; exit 1; }
  read -r k < "names/$name"; rm -f "names/$name"
fi
if [ -n "$id" ]; then
  if live "$id"; then echo "pyferry: run $id is still running" >&2; exit 1; fi
  rm -rf "runs/$id" "runs/$id.env" "runs/$id.pid" "runs/$id.stop"; runs=1
fi
if [ -n "$k" ]; then
  used=0
  for f in runs/*.env; do
    [ -e "$f" ] || continue
    read -r u < "$f"; [ "$u" = "$k" ] || continue
    r1=\${f#runs/}; r1=\${r1%.env}
    if live "$r1"; then used=1; else rm -rf "runs/$r1" "$f" "runs/$r1.pid" "runs/$r1.stop"; runs=$((runs + 1)); fi
  done
  for f in names/*; do
    [ -e "$f" ] || continue
    while IFS= read -r u; do [ "$u" = "$k" ] && used=1; done < "$f"
  done
  if [ $used = 0 ] && [ -d "envs/$k" ]; then rm -rf "envs/$k"; envs=1; fi
fi
echo "runs=$runs envs=$envs"
`;

/**
 * Removes finished runs, environments nothing uses or names, and objects no tree links to
 * (link count 1). Runs whose program is alive, and what they use, stay. Prints counts.
 */
export const GC = `${PRELUDE}${SALVAGE}
gc_busy && { echo "pyferry: another gc is running" >&2; exit ${REMOTE_EXIT.busy}; }
mkdir gc.lock 2>/dev/null || { echo "pyferry: another gc is running" >&2; exit ${REMOTE_EXIT.busy}; }
echo $$ > gc.lock/pid
# Only its own lock: one taken away as stale and made again by another gc is not this one's.
trap 'read -r gl_o < gc.lock/pid 2>/dev/null; [ "$gl_o" = $$ ] && rm -rf gc.lock' EXIT
salvage
runs=0; envs=0
for f in runs/*.env; do
  [ -e "$f" ] || continue
  id=\${f#runs/}; id=\${id%.env}
  if read -r p 2>/dev/null < "runs/$id.pid" && kill -0 "$p" 2>/dev/null; then continue; fi
  rm -rf "runs/$id" "runs/$id.env" "runs/$id.pid" "runs/$id.stop"; runs=$((runs + 1))
done
# Dot names too: assemblies and discarded copies that their writers left.
for d in envs/* envs/.tmp-* envs/.discard-*; do
  [ -d "$d" ] || continue
  k=\${d#envs/}; used=0
  # Every line of a name counts: a deployment's -prev lists what it can roll back to.
  for f in runs/*.env names/*; do
    [ -e "$f" ] || continue
    while IFS= read -r u; do [ "$u" = "$k" ] && { used=1; break; }; done < "$f"
    [ $used = 1 ] && break
  done
  [ $used = 1 ] && continue
  case $k in
    .tmp-*) [ -n "$(find "$d" -maxdepth 0 -mmin +60)" ] || continue ;;
    .discard-*) [ -n "$(find "$d" -maxdepth 0 -mmin +10)" ] || continue ;;
  esac
  rm -rf "$d"; envs=$((envs + 1))
done
objects=$(find objects -type f -links 1 -print -exec rm -f {} + | wc -l)
find objects -mindepth 1 -type d -empty -delete 2>/dev/null
echo "runs=$runs envs=$envs objects=$objects"
`;
