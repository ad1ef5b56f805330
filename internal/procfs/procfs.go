// Package procfs reads what Linux's /proc says about processes. Where
// there is no /proc, it knows nothing: every function says so.
package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Available reports whether /proc can be read.
func Available() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// State returns the state letter of pid from /proc/PID/stat ('R', 'S',
// 'Z' for a zombie, ...), or 0 if pid does not exist.
func State(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces and ')'.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}

// Children returns the children of pid, from every thread's children list.
func Children(pid int) map[int]bool {
	kids := map[int]bool{}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				kids[n] = true
			}
		}
	}
	return kids
}

// Reaped returns a count that grows each time pid reaps a child: the page
// faults of its waited-for children (cminflt plus cmajflt in
// /proc/PID/stat; a process that ran at all has made some). It tells that
// a child came and went even when it lived too briefly to be seen in
// Children. ok is false if pid does not exist or /proc cannot say.
func Reaped(pid int) (n uint64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	// After the command name: state ppid pgrp session tty_nr tpgid flags
	// minflt cminflt majflt cmajflt ...
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 11 {
		return 0, false
	}
	cmin, err1 := strconv.ParseUint(f[8], 10, 64)
	cmaj, err2 := strconv.ParseUint(f[10], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return cmin + cmaj, true
}
