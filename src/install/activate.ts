/**
 * Activation scripts in an environment's bin/, for the shells `python -m venv` covers: they
 * set VIRTUAL_ENV, put its bin/ first on PATH, unset PYTHONHOME, mark the prompt (unless
 * VIRTUAL_ENV_DISABLE_PROMPT is set) and define `deactivate`, which puts everything back.
 *
 * Unlike venv's, they name no folder: one environment is reached by several paths (moved, or
 * a deploy's symlink into the store, which also shares one tree between paths and dedupes it
 * by content), so each script works out the environment from its own location when sourced,
 * keeping the path as the user reached it (symlinks unresolved). The bytes are the same for
 * every environment.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";

/**
 * bash, zsh and other POSIX shells. bash and zsh say which file they are sourcing; dash, ksh and
 * busybox sh do not, and there the script finds itself among the shell's open files in /proc.
 */
const POSIX = `# Activates this environment in the current shell; \`deactivate\` undoes it.
# Source it from bash, zsh or another POSIX shell: "source DIR/bin/activate" or
# ". DIR/bin/activate". Run as a program, it changes nothing.
#
# No folder is written in here: the environment is the parent of the folder this file was
# sourced from, as the path was given (symlinks are not resolved, so a symlinked path shows as
# itself). bash and zsh name the file being sourced. Other shells (dash, ksh, busybox sh) do
# not: there it is looked for among the shell's open files in /proc (Linux only), which gives
# its path with symlinks resolved, unless the current folder is the environment or its bin/.

deactivate () {
    if [ -n "\${_OLD_VIRTUAL_PATH+set}" ]; then
        PATH=$_OLD_VIRTUAL_PATH
        export PATH
        unset _OLD_VIRTUAL_PATH
    fi
    if [ -n "\${_OLD_VIRTUAL_PYTHONHOME+set}" ]; then
        PYTHONHOME=$_OLD_VIRTUAL_PYTHONHOME
        export PYTHONHOME
        unset _OLD_VIRTUAL_PYTHONHOME
    fi
    if [ -n "\${_OLD_VIRTUAL_PS1+set}" ]; then
        PS1=$_OLD_VIRTUAL_PS1
        unset _OLD_VIRTUAL_PS1
    fi
    unset VIRTUAL_ENV VIRTUAL_ENV_PROMPT
    # Commands the shell found inside the environment must be looked up again.
    hash -r 2>/dev/null
    # "deactivate nondestructive" undoes an earlier activation and keeps this function.
    if [ "\${1:-}" != nondestructive ]; then
        unset -f deactivate
    fi
}

deactivate nondestructive

_pyferry_file=
if [ -n "\${BASH_VERSION:-}" ]; then
    _pyferry_file=\${BASH_SOURCE:-}
elif [ -n "\${ZSH_VERSION:-}" ]; then
    # In eval, so that other shells never parse zsh's syntax.
    eval '_pyferry_file=\${(%):-%x}'
fi
if [ -z "$_pyferry_file" ] && [ -d "/proc/$$/fd" ]; then
    for _pyferry_fd in /proc/$$/fd/*; do
        _pyferry_open=$(readlink "$_pyferry_fd" 2>/dev/null) || continue
        case $_pyferry_open in */bin/activate) _pyferry_file=$_pyferry_open ;; esac
    done
    if [ -n "$_pyferry_file" ]; then
        if [ "$PWD/bin/activate" -ef "$_pyferry_file" ]; then
            _pyferry_file=$PWD/bin/activate
        elif [ "$PWD/activate" -ef "$_pyferry_file" ]; then
            _pyferry_file=$PWD/activate
        fi
    fi
fi
case $_pyferry_file in
    */*) _pyferry_bin=\${_pyferry_file%/*} ;;
    *) _pyferry_bin=. ;;
esac
# pwd without -P: the logical path, symlinks kept.
if [ -z "$_pyferry_file" ] ||
    ! VIRTUAL_ENV=$(CDPATH= cd -- "$_pyferry_bin/.." >/dev/null 2>&1 && pwd); then
    echo "activate: cannot tell where this file is in this shell; source it with bash or zsh" >&2
    unset _pyferry_file _pyferry_fd _pyferry_open _pyferry_bin VIRTUAL_ENV
    return 1
fi
export VIRTUAL_ENV

# The name pyvenv.cfg gives (venv --prompt writes it quoted), else the folder's.
VIRTUAL_ENV_PROMPT=$(sed -n -e "/^prompt *= */{s///;s/^'\\(.*\\)'\\$/\\1/;s/^\\"\\(.*\\)\\"\\$/\\1/;p;q;}" "$VIRTUAL_ENV/pyvenv.cfg" 2>/dev/null)
if [ -z "$VIRTUAL_ENV_PROMPT" ]; then
    VIRTUAL_ENV_PROMPT=\${VIRTUAL_ENV##*/}
fi
export VIRTUAL_ENV_PROMPT

_OLD_VIRTUAL_PATH=$PATH
PATH=$VIRTUAL_ENV/bin:$PATH
export PATH
if [ -n "\${PYTHONHOME+set}" ]; then
    _OLD_VIRTUAL_PYTHONHOME=$PYTHONHOME
    unset PYTHONHOME
fi
if [ -z "\${VIRTUAL_ENV_DISABLE_PROMPT:-}" ]; then
    _OLD_VIRTUAL_PS1=\${PS1:-}
    PS1="($VIRTUAL_ENV_PROMPT) \${PS1:-}"
fi
hash -r 2>/dev/null
unset _pyferry_file _pyferry_fd _pyferry_open _pyferry_bin
`;

/** fish names the file being sourced, as it was given. */
const FISH = `# Activates this environment in fish: "source DIR/bin/activate.fish"; \`deactivate\` undoes it.
#
# No folder is written in here: the environment is the parent of the folder this file was
# sourced from, as the path was given (symlinks are not resolved, so a symlinked path shows as
# itself).

function deactivate --description "Leave the environment, putting back what activating it changed"
    if set -q _OLD_VIRTUAL_PATH
        set -gx PATH $_OLD_VIRTUAL_PATH
        set -e _OLD_VIRTUAL_PATH
    end
    if set -q _OLD_VIRTUAL_PYTHONHOME
        set -gx PYTHONHOME $_OLD_VIRTUAL_PYTHONHOME
        set -e _OLD_VIRTUAL_PYTHONHOME
    end
    if set -q _OLD_FISH_PROMPT_OVERRIDE
        set -e _OLD_FISH_PROMPT_OVERRIDE
        if functions -q _old_fish_prompt
            functions -e fish_prompt
            functions -c _old_fish_prompt fish_prompt
            functions -e _old_fish_prompt
        end
    end
    set -e VIRTUAL_ENV
    set -e VIRTUAL_ENV_PROMPT
    # "deactivate nondestructive" undoes an earlier activation and keeps this function.
    if test "$argv[1]" != nondestructive
        functions -e deactivate
    end
end

deactivate nondestructive

set -l file (status --current-filename)
if not string match -q -- '/*' $file
    set file $PWD/$file
end
# sh's cd and pwd (without -P) give the logical path, symlinks kept, on every fish version.
set -l dir (command sh -c 'cd -- "$1/.." && pwd' sh (string replace -r '/[^/]*$' '' -- $file))
or return 1
set -gx VIRTUAL_ENV $dir

# The name pyvenv.cfg gives (venv --prompt writes it quoted), else the folder's.
set -l name
if test -f $VIRTUAL_ENV/pyvenv.cfg
    set name (string match -r '^prompt *=.*' < $VIRTUAL_ENV/pyvenv.cfg)[1]
    set name (string replace -r '^prompt *= *' '' -- $name)
    set name (string replace -r '^([\\'"])(.*)\\1$' '$2' -- $name)
end
if test -z "$name"
    set name (string replace -r '.*/' '' -- $VIRTUAL_ENV)
end
set -gx VIRTUAL_ENV_PROMPT $name

set -gx _OLD_VIRTUAL_PATH $PATH
set -gx PATH $VIRTUAL_ENV/bin $PATH
if set -q PYTHONHOME
    set -gx _OLD_VIRTUAL_PYTHONHOME $PYTHONHOME
    set -e PYTHONHOME
end

if test -z "$VIRTUAL_ENV_DISABLE_PROMPT"; and functions -q fish_prompt
    functions -c fish_prompt _old_fish_prompt
    function fish_prompt
        set -l last_status $status
        printf '(%s) ' $VIRTUAL_ENV_PROMPT
        # The original prompt may show the last command's status: give it the same one.
        echo "exit $last_status" | source
        _old_fish_prompt
    end
    set -gx _OLD_FISH_PROMPT_OVERRIDE $VIRTUAL_ENV
end
`;

/**
 * The sh helper activate.csh runs, given the csh's pid, the path the history says was sourced
 * ("" if none) and the current folder. It prints the environment's folder and its prompt name
 * on two lines. The history's path is used when it is the file the shell has open (or /proc
 * cannot tell); else the open file, by the current folder's path when that reaches it. It is a
 * csh single-quoted string, so it has no "'" (printf makes one) and no "!" (csh expands it).
 */
const CSH_FIND = [
  'pid=$1 said=$2 here=$3 open=""',
  'for fd in /proc/$pid/fd/*; do f=$(readlink "$fd" 2>/dev/null) || continue; case $f in */bin/activate.csh) open=$f ;; esac; done',
  'case $said in "" | /*) ;; *) said=$here/$said ;; esac',
  'pick=""',
  'if [ -n "$said" ] && [ -f "$said" ] && { [ -z "$open" ] || [ "$said" -ef "$open" ]; }; then pick=$said',
  'elif [ -n "$open" ] && [ "$here/bin/activate.csh" -ef "$open" ]; then pick=$here/bin/activate.csh',
  'elif [ -n "$open" ] && [ "$here/activate.csh" -ef "$open" ]; then pick=$here/activate.csh',
  "else pick=$open; fi",
  '[ -n "$pick" ] && dir=$(cd -- "$(dirname -- "$pick")/.." && pwd) || exit 1',
  'q=$(printf "\\047")',
  'name=$(sed -n -e "/^prompt *= */{s///;s/^$q\\(.*\\)$q\\$/\\1/;s/^\\"\\(.*\\)\\"\\$/\\1/;p;q;}" "$dir/pyvenv.cfg" 2>/dev/null)',
  '[ -n "$name" ] || name=$(basename -- "$dir")',
  'printf "%s\\n%s\\n" "$dir" "$name"',
].join("; ");

/**
 * csh and tcsh do not say which file they are sourcing: an interactive shell's history has the
 * line that sourced it; otherwise the file is looked for among the shell's open files.
 */
const CSH = `# Activates this environment in csh or tcsh: "source DIR/bin/activate.csh"; \`deactivate\`
# undoes it.
#
# No folder is written in here, and csh does not tell a sourced file its own path. In an
# interactive shell the history has the "source" line, and its path is used as written
# (symlinks are not resolved, so a symlinked path shows as itself). Otherwise the file is looked
# for among the shell's open files in /proc (Linux only), which gives its path with symlinks
# resolved, unless the current folder is the environment or its bin/.

# "test ... &&", not a one-line if: csh substitutes the variables of a one-line if's command
# even when the condition is false, and an unset one is an error.
alias deactivate 'test $?_OLD_VIRTUAL_PATH != 0 && setenv PATH "$_OLD_VIRTUAL_PATH:q" && unset _OLD_VIRTUAL_PATH; test $?_OLD_VIRTUAL_PYTHONHOME != 0 && setenv PYTHONHOME "$_OLD_VIRTUAL_PYTHONHOME:q" && unset _OLD_VIRTUAL_PYTHONHOME; test $?_OLD_VIRTUAL_PROMPT != 0 && set prompt="$_OLD_VIRTUAL_PROMPT:q" && unset _OLD_VIRTUAL_PROMPT; unsetenv VIRTUAL_ENV; unsetenv VIRTUAL_ENV_PROMPT; rehash; test "\\!:*" != nondestructive && unalias deactivate'

deactivate nondestructive

set _pyferry_said = ""
if ($?prompt) then
    set _pyferry_line = (\`history -h 1\`)
    if ($#_pyferry_line >= 2) then
        if ("$_pyferry_line[1]" == "source") set _pyferry_said = "$_pyferry_line[2]"
    endif
    unset _pyferry_line
endif
set _pyferry_find = '${CSH_FIND}'
set _pyferry_found = ("\`sh -c '$_pyferry_find:q' sh $$ '$_pyferry_said:q' '$cwd:q'\`")
unset _pyferry_said _pyferry_find
# No "exit" on failure: in a sourced file it would end the user's shell.
if ($#_pyferry_found != 2) then
    echo "activate.csh: cannot tell where this file is; source it with its path in an interactive shell" > /dev/stderr
else
    setenv VIRTUAL_ENV "$_pyferry_found[1]:q"
    # The name pyvenv.cfg gives (venv --prompt writes it quoted), else the folder's.
    setenv VIRTUAL_ENV_PROMPT "$_pyferry_found[2]:q"
    set _OLD_VIRTUAL_PATH = "$PATH:q"
    setenv PATH "$VIRTUAL_ENV:q/bin:$PATH:q"
    if ($?PYTHONHOME) then
        set _OLD_VIRTUAL_PYTHONHOME = "$PYTHONHOME:q"
        unsetenv PYTHONHOME
    endif
    if (! $?VIRTUAL_ENV_DISABLE_PROMPT && $?prompt) then
        set _OLD_VIRTUAL_PROMPT = "$prompt:q"
        set prompt = "($VIRTUAL_ENV_PROMPT:q) $prompt:q"
    endif
    rehash
endif
unset _pyferry_found
`;

/** PowerShell's $PSScriptRoot is this script's folder as it was reached. */
const POWERSHELL = `# Activates this environment in PowerShell: ". DIR/bin/Activate.ps1"; \`deactivate\` undoes it.
#
# No folder is written in here: the environment is the parent of this script's folder as
# PowerShell reached it ($PSScriptRoot), so the same file serves every path to the environment.

function global:deactivate([switch] $NonDestructive) {
    if (Test-Path -Path Variable:global:_OLD_VIRTUAL_PATH) {
        $env:PATH = $global:_OLD_VIRTUAL_PATH
        Remove-Variable -Name _OLD_VIRTUAL_PATH -Scope Global
    }
    if (Test-Path -Path Variable:global:_OLD_VIRTUAL_PYTHONHOME) {
        $env:PYTHONHOME = $global:_OLD_VIRTUAL_PYTHONHOME
        Remove-Variable -Name _OLD_VIRTUAL_PYTHONHOME -Scope Global
    }
    if (Test-Path -Path Variable:global:_OLD_VIRTUAL_PROMPT) {
        Set-Item -Path Function:global:prompt -Value $global:_OLD_VIRTUAL_PROMPT
        Remove-Variable -Name _OLD_VIRTUAL_PROMPT -Scope Global
    }
    Remove-Item -Path Env:VIRTUAL_ENV -ErrorAction SilentlyContinue
    Remove-Item -Path Env:VIRTUAL_ENV_PROMPT -ErrorAction SilentlyContinue
    # "deactivate -NonDestructive" undoes an earlier activation and keeps this function.
    if (-not $NonDestructive) {
        Remove-Item -Path Function:global:deactivate
    }
}

deactivate -NonDestructive

$env:VIRTUAL_ENV = Split-Path -Path $PSScriptRoot -Parent

# The name pyvenv.cfg gives (venv --prompt writes it quoted), else the folder's.
$name = ""
$cfg = Join-Path -Path $env:VIRTUAL_ENV -ChildPath "pyvenv.cfg"
if (Test-Path -Path $cfg) {
    foreach ($line in Get-Content -Path $cfg) {
        if ($line -match '^prompt *= *(.*)$') {
            $name = $Matches[1] -replace '^([''"])(.*)\\1$', '$2'
            break
        }
    }
}
if (-not $name) {
    $name = Split-Path -Path $env:VIRTUAL_ENV -Leaf
}
$env:VIRTUAL_ENV_PROMPT = $name

$global:_OLD_VIRTUAL_PATH = $env:PATH
$env:PATH = $PSScriptRoot + [System.IO.Path]::PathSeparator + $env:PATH
if (Test-Path -Path Env:PYTHONHOME) {
    $global:_OLD_VIRTUAL_PYTHONHOME = $env:PYTHONHOME
    Remove-Item -Path Env:PYTHONHOME
}
if (-not $env:VIRTUAL_ENV_DISABLE_PROMPT) {
    $global:_OLD_VIRTUAL_PROMPT = $function:prompt
    function global:prompt {
        Write-Host -NoNewline "($env:VIRTUAL_ENV_PROMPT) "
        & $global:_OLD_VIRTUAL_PROMPT
    }
}
`;

/** The scripts by their names in bin/. */
export const ACTIVATE_SCRIPTS: Readonly<Record<string, string>> = {
  activate: POSIX,
  "activate.fish": FISH,
  "activate.csh": CSH,
  "Activate.ps1": POWERSHELL,
};

/** Write the activation scripts into `bin` (not executable: they are sourced, never run). */
export async function writeActivateScripts(bin: string): Promise<void> {
  for (const [name, text] of Object.entries(ACTIVATE_SCRIPTS)) {
    await writeFileAtomic(join(bin, name), text);
  }
}
