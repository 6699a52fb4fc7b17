package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func newCompletionCmd(cfg *rootConfig, root *ffcli.Command) *ffcli.Command {
	return &ffcli.Command{
		Name:       "completion",
		ShortUsage: "boxrun completion bash|zsh|fish",
		ShortHelp:  "print a shell completion script (e.g. source <(boxrun completion bash))",
		FlagSet:    cfg.newFlagSet("completion"),
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usagef("completion needs one of bash, zsh, fish")
			}
			var names []string
			for _, c := range root.Subcommands {
				names = append(names, c.Name)
			}
			words := strings.Join(names, " ")
			switch args[0] {
			case "bash":
				fmt.Fprintf(cfg.stdout, bashCompletion, words)
			case "zsh":
				fmt.Fprintf(cfg.stdout, zshCompletion, words)
			case "fish":
				for _, c := range root.Subcommands {
					fmt.Fprintf(cfg.stdout, "complete -c boxrun -f -n __fish_use_subcommand -a %s -d %q\n", c.Name, c.ShortHelp)
				}
				fmt.Fprintln(cfg.stdout, "complete -c boxrun -f -n '__fish_seen_subcommand_from stop start rm attach exec inspect' -a '(boxrun ls -q 2>/dev/null)'")
			default:
				return usagef("unsupported shell %q (want bash, zsh or fish)", args[0])
			}
			return nil
		},
	}
}

const bashCompletion = `# bash completion for boxrun
_boxrun() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "%s" -- "$cur"))
        return
    fi
    case ${COMP_WORDS[1]} in
    stop|start|rm|attach|exec|inspect)
        COMPREPLY=($(compgen -W "$(boxrun ls -q 2>/dev/null)" -- "$cur")) ;;
    completion)
        COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")) ;;
    *)
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _boxrun boxrun
`

const zshCompletion = `#compdef boxrun
_boxrun() {
    if (( CURRENT == 2 )); then
        compadd -- %s
        return
    fi
    case ${words[2]} in
    stop|start|rm|attach|exec|inspect) compadd -- ${(f)"$(boxrun ls -q 2>/dev/null)"} ;;
    completion) compadd -- bash zsh fish ;;
    *) _files ;;
    esac
}
compdef _boxrun boxrun
`
