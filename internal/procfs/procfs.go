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
