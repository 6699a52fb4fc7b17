package main

import (
	"github.com/boxrun/boxrun/client"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newStopCmd(cfg *rootConfig) *ffcli.Command {
	return newBoxVerbCmd(cfg, "stop", "stop running boxes, keeping their files", "Stopped", (*client.Client).Stop)
}
