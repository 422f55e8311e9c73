// Command dummyagent stands for a mig-agent in the agentdestroy tests: it
// exits cleanly on SIGTERM, or, with -stubborn, ignores SIGTERM and runs
// until it is killed.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-stubborn" {
		signal.Ignore(syscall.SIGTERM)
		os.Stdout.WriteString("ready\n")
		for {
			time.Sleep(time.Hour)
		}
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	os.Stdout.WriteString("ready\n")
	<-c
}
