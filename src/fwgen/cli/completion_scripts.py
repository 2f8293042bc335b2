"""The scripts that bash, zsh and fish load to complete ``fwgen`` (`fwgen completion SHELL`).

Each script calls fwgen back with ``_FWGEN_COMPLETE=SHELL`` and the line up to the cursor in
``_FWGEN_COMPLETE_LINE``; fwgen answers one candidate a line, ``KIND<tab>VALUE<tab>HELP``
(`fwgen.cli.completion`). KIND ``plain`` is a value to offer; ``yaml``, ``file`` and ``dir``
ask the shell to complete profile files (and folders), any file, or folders itself.
Nothing fwgen answers is evaluated by the shell: values are read line by line, quoted, and
never globbed.
"""

from __future__ import annotations

BASH = r"""# bash completion for fwgen: source <(fwgen completion bash), or save this as
# ~/.local/share/bash-completion/completions/fwgen
_fwgen_completion() {
    local cur="${COMP_WORDS[COMP_CWORD]}" kind value line
    COMPREPLY=()
    while IFS= read -r line; do
        kind=${line%%$'\t'*}
        value=${line#*$'\t'}
        value=${value%%$'\t'*}
        case $kind in
        plain)
            COMPREPLY+=("$value")
            if [[ $value == *= ]]; then compopt -o nospace 2>/dev/null; fi
            ;;
        yaml)
            compopt -o filenames 2>/dev/null
            mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur"
                compgen -f -X '!*.yaml' -- "$cur"; compgen -f -X '!*.yml' -- "$cur")
            ;;
        file)
            compopt -o filenames 2>/dev/null
            mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")
            ;;
        dir)
            compopt -o filenames 2>/dev/null
            mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$cur")
            ;;
        esac
    done < <(_FWGEN_COMPLETE=bash _FWGEN_COMPLETE_LINE="${COMP_LINE:0:COMP_POINT}" \
        _FWGEN_COMPLETE_WORD="$cur" "$1" 2>/dev/null)
    return 0
}
complete -F _fwgen_completion fwgen
"""

ZSH = r"""#compdef fwgen
# zsh completion for fwgen: source <(fwgen completion zsh) after compinit, or save this
# as _fwgen in a folder of $fpath
_fwgen() {
    local -a spaced joined
    local kind value help
    local line="${words[1,CURRENT-1]} $PREFIX"
    while IFS=$'\t' read -r kind value help; do
        case $kind in
        plain)
            if [[ $value == *= ]]; then
                joined+=("${value//:/\\:}:$help")
            else
                spaced+=("${value//:/\\:}:$help")
            fi
            ;;
        yaml) _files -g '*.(yaml|yml)' ;;
        file) _files ;;
        dir) _files -/ ;;
        esac
    done < <(_FWGEN_COMPLETE=zsh _FWGEN_COMPLETE_LINE="$line" "${words[1]}" 2>/dev/null)
    (( ${#spaced} )) && _describe -t values fwgen spaced
    (( ${#joined} )) && _describe -t values fwgen joined -S ''
    return 0
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _fwgen "$@"
else
    compdef _fwgen fwgen
fi
"""

FISH = r"""# fish completion for fwgen: fwgen completion fish | source, or save this as
# ~/.config/fish/completions/fwgen.fish
function __fwgen_complete
    set -l words (commandline -opc)
    set -l token (commandline -ct)
    env _FWGEN_COMPLETE=fish _FWGEN_COMPLETE_LINE=(commandline -cp) $words[1] 2>/dev/null |
    while read -l -d \t kind value help
        switch $kind
            case plain
                printf '%s\t%s\n' $value $help
            case yaml
                __fish_complete_suffix .yaml
                __fish_complete_suffix .yml
            case file
                __fish_complete_path $token
            case dir
                __fish_complete_directories $token
        end
    end
end
complete -c fwgen -f -a '(__fwgen_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}
