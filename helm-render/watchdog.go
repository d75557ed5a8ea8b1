package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// startWatchdog bounds the memory the Go runtime holds to maxBytes. RLIMIT_AS cannot do it
// (Go reserves far more address space than it uses and fails at start-up), so the runtime is
// told its limit (the GC works harder near it) and a goroutine reads what the runtime has
// mapped every few milliseconds and stops the process, with an answer saying why, once it
// passes the bound. The scheduler preempts a looping template, so the watchdog gets to run.
func startWatchdog(maxBytes int64) {
	if maxBytes <= 0 {
		return
	}
	debug.SetMemoryLimit(maxBytes * 9 / 10)
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	go func() {
		for {
			metrics.Read(sample)
			if used := sample[0].Value.Uint64(); used > uint64(maxBytes) {
				if reply(answer{Error: &failure{"memory", fmt.Sprintf(
					"the render used %d MiB, more than the limit of %d MiB, and was stopped",
					used>>20, maxBytes>>20)}}) {
					os.Exit(1)
				}
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}
