package main

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// exitCPU holds, per PID reaped, the CPU time its process used in its
// whole life (user and system, all threads: wait4's rusage).
var exitCPU sync.Map // int -> time.Duration

// processCPU returns the CPU time a live process has used so far, summed
// over its threads from /proc/PID/task/*/schedstat (nanoseconds on the
// CPU; /proc/PID/stat counts only in clock ticks of 10 ms, too coarse for
// a process that starts in a few).
func processCPU(pid int) (time.Duration, bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	var total time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited meanwhile
		}
		f, _, _ := bytes.Cut(b, []byte(" "))
		ns, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(ns)
	}
	return total, true
}

// cpuAtExit waits up to wait for the reaper to have reaped pid, and
// returns the CPU time of its life.
func cpuAtExit(pid int, wait time.Duration) (time.Duration, bool) {
	deadline := time.Now().Add(wait)
	for {
		if v, ok := exitCPU.Load(pid); ok {
			return v.(time.Duration), true
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(pollEvery)
	}
}
