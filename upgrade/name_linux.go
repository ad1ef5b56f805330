package upgrade

import (
	"os"
	"path/filepath"
)

// commLen is the longest name the kernel keeps for a thread (TASK_COMM_LEN
// less its NUL).
const commLen = 15

// nameProcess names every thread of this process name, as the kernel
// would have had it started the program by its path: started from its
// descriptor (/proc/self/fd/N), a process is named "N" in ps, top and
// pgrep, and so is every thread the runtime started from it. A thread
// started while the names change takes its starter's name, old or new,
// so the threads are named again until no new one appears.
func nameProcess(name string) {
	if len(name) > commLen {
		name = name[:commLen]
	}
	done := map[string]bool{}
	for range 3 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return
		}
		fresh := false
		for _, t := range tasks {
			if done[t.Name()] {
				continue
			}
			done[t.Name()], fresh = true, true
			// A thread that has exited meanwhile cannot be named; nothing is lost.
			os.WriteFile(filepath.Join("/proc/self/task", t.Name(), "comm"), []byte(name), 0)
		}
		if !fresh {
			return
		}
	}
}
