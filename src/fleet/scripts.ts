/**
 * The host side of deployments, POSIX sh on top of the remote store (transport/scripts.ts):
 * reading what environments hold, switching an environment's path between assembled
 * environments with one rename, and running hooks. The store keeps deployed environments
 * from gc through names/deploy-<id> (current) and names/deploy-<id>-prev (for rollback),
 * where <id> is the cksum of the environment's path.
 */
import { PRELUDE, PROBE_PYTHON, REMOTE_EXIT, SALVAGE } from "../transport/scripts.js";

export const FLEET_EXIT = {
  /** The path holds something pyferry will not replace (a file). */
  notAnEnv: 98,
  /** The switch itself failed. */
  switchFailed: 99,
  /** Nothing to roll back to. */
  noPrevious: 100,
  /** A hook started by an earlier deploy of the environment still runs. */
  hookRunning: 101,
} as const;

/**
 * Shell functions for the hook pid file names/<id>-hookpid, which holds "PID START": the hook's
 * pid and its start time (field 22 of /proc/PID/stat), so that a pid reused by another process
 * since, after a deploy that could not remove the file (killed), does not count as the hook. A
 * file with the pid alone (older pyferry) counts only if that process started before the file
 * was written. Where /proc is missing, the pid alone decides.
 */
const HOOK_PIDS = `
started() { read -r st_l < "/proc/$1/stat" 2>/dev/null || return 0
  st_l=\${st_l##*)}; set -- $st_l; shift 19; printf '%s' "$1"; }
# Whether the hook named in file $1 still runs; its pid in $hook_pid. A stale file is removed.
hook_alive() {
  hook_pid=""; hook_start=""
  [ -f "$1" ] && read -r hook_pid hook_start < "$1" 2>/dev/null || return 1
  if [ -n "$hook_pid" ] && kill -0 "$hook_pid" 2>/dev/null; then
    [ -r "/proc/$hook_pid/stat" ] || return 0
    hs_t=$(started "$hook_pid")
    if [ -n "$hook_start" ]; then
      [ "$hs_t" = "$hook_start" ] && return 0
    else
      hs_b=; while read -r hs_k hs_v; do [ "$hs_k" = btime ] && { hs_b=$hs_v; break; }; done < /proc/stat
      hs_hz=$(getconf CLK_TCK 2>/dev/null) || hs_hz=100
      hs_m=$(stat -c %Y "$1" 2>/dev/null) || hs_m=
      if [ -z "$hs_b" ] || [ -z "$hs_m" ] || [ -z "$hs_t" ] ||
        [ $((hs_b + hs_t / hs_hz)) -le $((hs_m + 1)) ]; then return 0; fi
    fi
  fi
  rm -f "$1"; return 1
}
# Waits up to ten seconds for the hook named in file $1 to end; exits hookRunning if it does not.
wait_hook() {
  hw_n=0
  while hook_alive "$1"; do
    hw_n=$((hw_n + 1))
    if [ $hw_n -gt 10 ]; then
      echo "pyferry: a hook started by an earlier deploy still runs there (pid $hook_pid); let it end or stop it, then deploy again" >&2
      exit ${FLEET_EXIT.hookRunning}
    fi
    sleep 1
  done
}
`;

/** The name files of the environment at path $1, in $id. */
const ID = `id=deploy-$(printf '%s' "$1" | cksum | cut -d' ' -f1)`;

/**
 * $1: an interpreter, $2: the probe script, $3: the interpreter's stamp when it was last
 * probed (or ""), then environment paths. Prints "same-python" when the interpreter file is
 * unchanged since (no Python is started), else its description (the probe's line) and "real
 * PATH"; then "stamp STAMP"; then for each environment "env PATH", "link TARGET" or "kind
 * venv|dir|file|none" (a venv: a folder with pyvenv.cfg), "cfg-version V" and "cfg-executable PATH"
 * from a linked environment's pyvenv.cfg, and "dist NAME-VERSION.dist-info" for what it has installed.
 *
 * stdin: trees the client expects to ship, each a line "tree KEY" followed by its object ids;
 * for each the store says "tree KEY complete", or "tree KEY absent" and "missing ID" for each
 * object it lacks (all of them after "tree KEY absent all", when the store has no objects).
 */
export const STATE = `${PRELUDE}${SALVAGE}
py=$1; probe=$2; known=$3; shift 3
stamp=$(stat -L -c '%i %s %Y' "$py" 2>/dev/null)
if [ -n "$stamp" ] && [ "$stamp" = "$known" ]; then
  echo same-python
else
${PROBE_PYTHON}
fi
echo "stamp $stamp"
for p in "$@"; do
  echo "env $p"
  if [ -L "$p" ]; then echo "link $(readlink "$p")"
  elif [ -f "$p/pyvenv.cfg" ]; then echo "kind venv"
  elif [ -d "$p" ]; then echo "kind dir"
  elif [ -e "$p" ]; then echo "kind file"
  else echo "kind none"; fi
  id=deploy-$(printf '%s' "$p" | cksum | cut -d' ' -f1)
  [ -e "names/$id-hooks" ] && echo "hooks-pending"
  # The interpreter a deployed environment was made for, from its pyvenv.cfg.
  if [ -L "$p" ] && [ -f "$p/pyvenv.cfg" ]; then
    while IFS= read -r l; do
      case $l in "version = "*) echo "cfg-version \${l#*= }" ;; "executable = "*) echo "cfg-executable \${l#*= }" ;; esac
    done < "$p/pyvenv.cfg"
  fi
  for d in "$p"/lib/python*/site-packages/*.dist-info; do
    [ -d "$d" ] && echo "dist \${d##*/}"
  done
done
salvage
all=; has_any objects || all=" all"
skip=
while IFS= read -r o; do
  case $o in
    "tree "*) k=\${o#tree }
      if [ -e "envs/$k/.pyferry-complete" ]; then echo "tree $k complete"; skip=1
      else echo "tree $k absent$all"; skip=$all; fi ;;
    *) [ -n "$skip" ] || [ -e "objects/$o" ] || echo "missing $o" ;;
  esac
done
exit 0
`;

/**
 * $1: environment path, $2: what to point it at, $3: "deploy" or "back", $4: "hooks" when hooks
 * or a reload command are to run after a deploy (see HOOKS_DONE), "reload" when a reload
 * command is to run after a rollback (see RELOAD_DONE).
 *
 * What a path can point at: an environment key of the store; "none" (back only: the path had
 * nothing before its first deploy, and its link goes); "dir NAME", a virtualenv that was
 * at the path before pyferry took it over, kept beside it as NAME; or "link TARGET", a symlink
 * pyferry did not make. names/<id>-prev lists what the path pointed at before, newest first (at
 * most five): a deploy adds what it replaces (printing "prev WHAT"); "back" (a rollback, or a
 * failed deploy undone) switches to the newest and takes it off the list. A folder there is
 * taken over only when it is a virtualenv (pyvenv.cfg), and only moved aside, never removed.
 */
export const SWITCH_BODY = `${HOOK_PIDS}
p=$1; k=$2; mode=$3; ${ID}; h=names/$id-prev
if [ "$k" = none ]; then
  # Back to no environment at all (a first deploy undone): only a link into the store goes.
  if [ -L "$p" ]; then case $(readlink "$p") in "$r"/envs/*) rm -f "$p" ;; esac; fi
  rm -f "names/$id" "names/$id-hooks" "names/$id-undo"
  exit 0
fi
case $k in
  "dir "*) t=\${p%/*}/\${k#dir }; [ -d "$t" ] || { echo "pyferry: $t is gone" >&2; exit ${REMOTE_EXIT.envMissing}; } ;;
  "link "*) t=\${k#link } ;;
  *) t=$r/envs/$k
     [ -e "$t/.pyferry-complete" ] || { echo "pyferry: environment $k is not in the store" >&2; exit ${REMOTE_EXIT.envMissing}; } ;;
esac
case $p in "$r"|"$r"/*) echo "pyferry: $p is inside pyferry's store $r" >&2; exit ${FLEET_EXIT.notAnEnv} ;; esac
# Not under a hook still running in the environment there (a deploy stopped while it ran):
# that environment fails, and nothing is switched.
[ "$mode" = deploy ] && wait_hook "names/$id-hookpid"
now=""
if [ -L "$p" ]; then
  now=$(readlink "$p")
  case $now in "$r"/envs/*) now=\${now##*/} ;; *) now="link $now" ;; esac
elif [ -d "$p" ]; then
  [ -f "$p/pyvenv.cfg" ] || { echo "pyferry: $p is a folder but not a virtualenv, so pyferry will not replace it" >&2; exit ${FLEET_EXIT.notAnEnv}; }
  o=$p.pyferry-orig
  if [ -e "$o" ] || [ -L "$o" ]; then o=$p.pyferry-orig-$$; fi
  now="dir \${o##*/}"
elif [ -e "$p" ]; then
  echo "pyferry: $p is a file, not an environment" >&2; exit ${FLEET_EXIT.notAnEnv}
fi
case $p in */*) d=\${p%/*}; d=\${d:-/} ;; *) d=. ;; esac
[ -d "$d" ] || mkdir -p "$d" || exit ${FLEET_EXIT.switchFailed}
# The records first, then the switch: killed in between, both environments are still kept.
if [ "$mode" = back ]; then
  if read -r top 2>/dev/null < "$h" && [ "$top" = "$k" ]; then
    tail -n +2 "$h" > "$h.new" && mv -f "$h.new" "$h"
  fi
elif [ -n "$now" ] && [ "$now" != "$k" ]; then
  { printf '%s\\n' "$now"; head -n 4 "$h" 2>/dev/null || :; } > "$h.new" && mv -f "$h.new" "$h" || exit ${FLEET_EXIT.switchFailed}
  echo "prev $now"
fi
rm -f "names/$id-undo" "names/$id-reload"
printf '%s\\n' "$k" > "names/$id"
# A rollback's reload is owed until RELOAD_DONE: if it fails, the next rollback runs it again.
if [ "$mode" = back ] && [ "$4" = reload ]; then printf '%s\\n' "$k" > "names/$id-reload"; fi
# Until HOOKS_DONE, the hooks of this switch are owed: a deploy killed before they ran finds
# the environment current and runs them then.
if [ "$mode" = deploy ] && [ "$4" = hooks ]; then printf '%s\\n' "$k" > "names/$id-hooks"
elif [ -e "names/$id-hooks" ]; then rm -f "names/$id-hooks"; fi
if [ -e "$p.pyferry-new" ] || [ -L "$p.pyferry-new" ]; then rm -f "$p.pyferry-new"; fi
ln -s "$t" "$p.pyferry-new" || exit ${FLEET_EXIT.switchFailed}
# A taken-over virtualenv goes aside only now, the new link ready: two renames back to back.
case $now in "dir "*) mv -T "$p" "$d/\${now#dir }" || exit ${FLEET_EXIT.switchFailed} ;; esac
mv -T "$p.pyferry-new" "$p" || exit ${FLEET_EXIT.switchFailed}
exit 0
`;

export const SWITCH = `${PRELUDE}${SWITCH_BODY}`;

/** $1: environment path. The reload after a rollback's switch has run. */
export const RELOAD_DONE = `${PRELUDE}
${ID}
rm -f "names/$id-reload"
`;

/** $1: environment path. Its hooks and reload command have run. */
export const HOOKS_DONE = `${PRELUDE}
${ID}
rm -f "names/$id-hooks"
`;

/**
 * $1: environment path. Prints "reload-owed" when the reload after the last rollback's switch
 * has not succeeded, then "prev WHAT" (see SWITCH_BODY) when there is something to roll
 * back to, then "now NAME-VERSION.dist-info" for each distribution the path's environment holds
 * and "then ..." for each the previous one holds, so that a rollback can say what it changes.
 */
export const PREVIOUS = `${PRELUDE}
${ID}
[ -e "names/$id-reload" ] && echo "reload-owed"
read -r k 2>/dev/null < "names/$id-prev" || exit ${FLEET_EXIT.noPrevious}
case $k in
  "dir "*) t=\${1%/*}/\${k#dir }; [ -d "$t" ] || exit ${FLEET_EXIT.noPrevious} ;;
  "link "*) t=\${k#link } ;;
  *) t=envs/$k; [ -e "$t/.pyferry-complete" ] || exit ${FLEET_EXIT.noPrevious} ;;
esac
echo "prev $k"
for d in "$1"/lib/python*/site-packages/*.dist-info; do [ -d "$d" ] && echo "now \${d##*/}"; done
for d in "$t"/lib/python*/site-packages/*.dist-info; do [ -d "$d" ] && echo "then \${d##*/}"; done
exit 0
`;

/**
 * $1: environment path, $2: working folder ("" = the path's parent), $3: a command for sh.
 * Runs it as if the environment were activated; its output comes back as it is. The client
 * keeps this session's stdin open while the hook runs: when it ends (pyferry stopped or
 * killed, its connection gone), the hook and its children are stopped with SIGTERM rather than
 * left running, for the next deploy to run a second copy beside them. The hook's pid is kept in
 * names/<id>-hookpid meanwhile, and a hook still running from an earlier deploy is waited for
 * no longer than a few seconds, then reported (exit hookRunning) instead of doubled.
 */
export const HOOK = `${PRELUDE}${HOOK_PIDS}
p=$1; w=\${2:-$(dirname "$1")}; cmd=$3; ${ID}; hp=$PWD/names/$id-hookpid
wait_hook "$hp"
cd "$w" 2>/dev/null || { echo "pyferry: cannot enter $w" >&2; exit 1; }
group=""; command -v setsid >/dev/null 2>&1 && group=setsid
VIRTUAL_ENV=$p PATH="$p/bin:$PATH" $group sh -c "$cmd" </dev/null &
h=$!
echo "$h $(started "$h")" > "$hp"
stop() { kill -TERM -"$h" 2>/dev/null || kill -TERM "$h" 2>/dev/null; }
# A background command's stdin is /dev/null unless redirected from a saved copy.
exec 3<&0
( while read -r _; do :; done; stop ) <&3 >/dev/null 2>&1 &
g=$!
exec 3<&-
wait "$h"; rc=$?
kill "$g" 2>/dev/null
rm -f "$hp"
exit $rc
`;

/**
 * $1: environment key. Marks the store's copy of that environment as no longer whole (it does not
 * hold what it was assembled with): the next shipment assembles it again from the objects and
 * puts it in the copy's place, which stays until then for the links that point to it.
 */
export const DISCARD = `${PRELUDE}
rm -f "envs/$1/.pyferry-complete"
`;

/** $1: environment key. Compiles the environment's modules to bytecode. */
export const COMPILE = `${PRELUDE}
e=envs/$1
"$e/bin/python" -m compileall -q "$e/lib" >/dev/null || exit 1
`;
