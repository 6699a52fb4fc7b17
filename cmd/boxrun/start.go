package main

import (
	"github.com/boxrun/boxrun/client"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newStartCmd(cfg *rootConfig) *ffcli.Command {
	return newBoxVerbCmd(cfg, "start", "start stopped boxes again", "Started", (*client.Client).Start)
}
