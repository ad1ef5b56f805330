package upgrade

import (
	"os"
	"path/filepath"
	"strings"
)

// commLen is the longest name the kernel keeps for a thread (TASK_COMM_LEN
// less its NUL).
const commLen = 15

// nameProcess gives this process's threads name, as the kernel would have
// named them had it started the program by its path: started from its
// descriptor (/proc/self/fd/N), a process is named "N" in ps, top and
// pgrep, and so is every thread the runtime started from it. Only threads
// still named so are renamed: one the program named itself keeps its
// name. A thread started while the names change takes its starter's name,
// old or new, so the threads are looked at again until no new one appears.
func nameProcess(name string) {
	if len(name) > commLen {
		name = name[:commLen]
	}
	seen := map[string]bool{}
	for range 3 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return
		}
		fresh := false
		for _, t := range tasks {
			if seen[t.Name()] {
				continue
			}
			seen[t.Name()], fresh = true, true
			comm := filepath.Join("/proc/self/task", t.Name(), "comm")
			if b, err := os.ReadFile(comm); err != nil || !numeric(strings.TrimSpace(string(b))) {
				continue // exited meanwhile, or named otherwise
			}
			os.WriteFile(comm, []byte(name), 0) // a thread that has exited cannot be named; nothing is lost
		}
		if !fresh {
			return
		}
	}
}

// numeric reports whether s is a descriptor's number.
func numeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
