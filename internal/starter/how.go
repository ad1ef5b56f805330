package starter

import (
	"fmt"
	"os"
	"syscall"
)

// How describes how a process ended, for a message: "with status 3",
// "by signal killed", or "in an unknown way" for a nil state.
func How(st *os.ProcessState) string {
	if st == nil {
		return "in an unknown way"
	}
	// Every platform's WaitStatus has these two methods; unix's is the one
	// that can say yes.
	if ws, ok := st.Sys().(interface {
		Signaled() bool
		Signal() syscall.Signal
	}); ok && ws.Signaled() {
		return "by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("with status %d", st.ExitCode())
}
