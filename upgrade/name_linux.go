package upgrade

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// commLen is the longest name the kernel keeps for a thread (TASK_COMM_LEN
// less its NUL).
const commLen = 15

// nameProcess gives this process's threads name, as the kernel would have
// named them had it started the program by its path: started from its
// descriptor (/proc/self/fd/N), a process is named "N" in ps, top and
// pgrep, and so is every thread the runtime started from it. Only threads
// still named so are renamed: one the program named itself keeps its name
// (unless it does so between the read of the name and the write here). A
// thread started while the names change takes its starter's name, old or
// new, so the threads are looked at again until no new one appears.
// Raw system calls: an *os.File would try the poller on every comm file.
func nameProcess(name string) {
	if len(name) > commLen {
		name = name[:commLen]
	}
	seen := map[string]bool{}
	for range 3 {
		tids, err := listTasks()
		if err != nil {
			return
		}
		fresh := false
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid], fresh = true, true
			renameTask(tid, name)
		}
		if !fresh {
			return
		}
	}
}

// listTasks returns the IDs of this process's threads.
func listTasks() ([]string, error) {
	fd, err := unix.Open("/proc/self/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var tids []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return tids, nil
		}
		_, _, tids = unix.ParseDirent(buf[:n], -1, tids)
	}
}

// renameTask names thread tid, if it is still named after a descriptor.
// A thread that has exited cannot be named; nothing is lost.
func renameTask(tid, name string) {
	fd, err := unix.Open("/proc/self/task/"+tid+"/comm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var b [commLen + 1]byte
	n, err := unix.Read(fd, b[:])
	if err != nil || !numeric(bytes.TrimSpace(b[:max(n, 0)])) {
		return // named otherwise
	}
	// comm is a seq_file, which refuses pwrite: back to the start, then write.
	if _, err := unix.Seek(fd, 0, 0); err == nil {
		unix.Write(fd, []byte(name))
	}
}

// numeric reports whether s is a descriptor's number.
func numeric(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
