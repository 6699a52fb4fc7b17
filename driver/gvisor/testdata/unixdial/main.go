// Command unixdial connects to each Unix socket path in its arguments and
// prints "PATH: connected" or "PATH: ERROR" per line. The hostile tests run
// it inside a box.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	for _, p := range os.Args[1:] {
		c, err := net.Dial("unix", p)
		if err != nil {
			fmt.Printf("%s: %v\n", p, err)
			continue
		}
		c.Close()
		fmt.Printf("%s: connected\n", p)
	}
}
