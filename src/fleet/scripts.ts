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
} as const;

/** The name files of the environment at path $1, in $id. */
const ID = `id=deploy-$(printf '%s' "$1" | cksum | cut -d' ' -f1)`;

/**
 * $1: an interpreter, $2: the probe script, $3: the interpreter's stamp when it was last
 * probed (or ""), then environment paths. Prints "same-python" when the interpreter file is
 * unchanged since (no Python is started), else its description (the probe's line) and "real
 * PATH"; then "stamp STAMP"; then for each environment "env PATH", "link TARGET" or "kind
 * dir|none", and "dist NAME-VERSION.dist-info" for what it has installed.
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
  elif [ -d "$p" ]; then echo "kind dir"
  elif [ -e "$p" ]; then echo "kind file"
  else echo "kind none"; fi
  id=deploy-$(printf '%s' "$p" | cksum | cut -d' ' -f1)
  [ -e "names/$id-hooks" ] && echo "hooks-pending"
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
 * $1: environment path, $2: environment key, $3: "deploy" or "restore", $4: "hooks" when
 * hooks or a reload command are to run after a deploy (see HOOKS_DONE). Points the path at
 * envs/<key> with one rename; a folder pyferry did not make is moved aside once
 * (PATH.pyferry-orig). A deploy records the environment it replaced as the one to roll back
 * to (printing "prev KEY"), remembering the earlier record; a restore (after a failed deploy)
 * puts that earlier record back, as if the failed deploy had never happened.
 */
export const SWITCH_BODY = `
p=$1; k=$2; mode=$3; ${ID}
t=$r/envs/$k
[ -e "$t/.pyferry-complete" ] || { echo "pyferry: environment $k is not in the store" >&2; exit ${REMOTE_EXIT.envMissing}; }
prev=""
if [ -L "$p" ]; then
  prev=$(readlink "$p"); prev=\${prev##*/}
elif [ -d "$p" ]; then
  mv "$p" "$p.pyferry-orig" 2>/dev/null || mv "$p" "$p.pyferry-orig-$$" || exit ${FLEET_EXIT.switchFailed}
elif [ -e "$p" ]; then
  echo "pyferry: $p is a file, not an environment" >&2; exit ${FLEET_EXIT.notAnEnv}
fi
case $p in */*) d=\${p%/*}; d=\${d:-/} ;; *) d=. ;; esac
[ -d "$d" ] || mkdir -p "$d" || exit ${FLEET_EXIT.switchFailed}
# The records first, then the switch: killed in between, both environments are still kept.
if [ "$mode" = restore ]; then
  if [ -e "names/$id-undo" ]; then mv -f "names/$id-undo" "names/$id-prev"; else rm -f "names/$id-prev"; fi
elif [ -n "$prev" ] && [ "$prev" != "$k" ]; then
  if read -r u < "names/$id-prev" 2>/dev/null; then printf '%s\\n' "$u" > "names/$id-undo"
  elif [ -e "names/$id-undo" ]; then rm -f "names/$id-undo"; fi
  printf '%s\\n' "$prev" > "names/$id-prev"
  echo "prev $prev"
fi
printf '%s\\n' "$k" > "names/$id"
# Until HOOKS_DONE, the hooks of this switch are owed: a deploy killed before they ran finds
# the environment current and runs them then.
if [ "$mode" = deploy ] && [ "$4" = hooks ]; then printf '%s\\n' "$k" > "names/$id-hooks"
elif [ -e "names/$id-hooks" ]; then rm -f "names/$id-hooks"; fi
if [ -e "$p.pyferry-new" ] || [ -L "$p.pyferry-new" ]; then rm -f "$p.pyferry-new"; fi
ln -s "$t" "$p.pyferry-new" && mv -T "$p.pyferry-new" "$p" || exit ${FLEET_EXIT.switchFailed}
exit 0
`;

export const SWITCH = `${PRELUDE}${SWITCH_BODY}`;

/** $1: environment path. Its hooks and reload command have run. */
export const HOOKS_DONE = `${PRELUDE}
${ID}
rm -f "names/$id-hooks"
`;

/** $1: environment path. Prints "prev KEY" when there is an environment to roll back to. */
export const PREVIOUS = `${PRELUDE}
${ID}
read -r k < "names/$id-prev" 2>/dev/null || exit ${FLEET_EXIT.noPrevious}
[ -e "envs/$k/.pyferry-complete" ] || exit ${FLEET_EXIT.noPrevious}
echo "prev $k"
`;

/**
 * $1: environment path, $2: working folder ("" = the path's parent), $3: a command for sh.
 * Runs it as if the environment were activated; its output comes back as it is.
 */
export const HOOK = `${PRELUDE}
p=$1; w=\${2:-$(dirname "$1")}; cmd=$3
cd "$w" 2>/dev/null || { echo "pyferry: cannot enter $w" >&2; exit 1; }
VIRTUAL_ENV=$p PATH="$p/bin:$PATH" sh -c "$cmd"
`;

/** $1: environment key. Compiles the environment's modules to bytecode. */
export const COMPILE = `${PRELUDE}
e=envs/$1
"$e/bin/python" -m compileall -q "$e/lib" >/dev/null || exit 1
`;
