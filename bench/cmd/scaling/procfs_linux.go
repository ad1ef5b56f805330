package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// countFDs returns the number of this process's open descriptors. The
// directory read itself holds one while it runs; that one is not counted.
func countFDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	return len(ents) - 1, nil
}

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, err
	}
	m, err := parseStatus(string(b))
	if err != nil {
		return Memory{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}

// alive reports whether pid exists and has not exited: a zombie counts
// as gone.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if err != nil || i < 0 || i+2 >= len(b) {
		return true
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}
