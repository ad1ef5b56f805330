//go:build unix

package pidfile_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/handoff-go/handoff/pidfile"
)

func ExampleWrite() {
	dir, err := os.MkdirTemp("", "pidfile-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.pid")

	// A real program passes os.Getpid(); fixed PIDs keep the output stable.
	const oldPID, newPID = 4312, 4377

	// At start-up: fail early if the pidfile could not be written later.
	if err := pidfile.Check(path); err != nil {
		log.Fatal(err)
	}

	// The old process is serving; then its successor becomes ready.
	if err := pidfile.Write(path, oldPID); err != nil {
		log.Fatal(err)
	}
	if err := pidfile.Write(path, newPID); err != nil {
		log.Fatal(err)
	}
	pid, err := pidfile.Read(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pidfile names", pid)

	// The old process exits and tries to clean up: the file is no longer its own.
	err = pidfile.Remove(path, oldPID)
	fmt.Println("old process is owner:", !errors.Is(err, pidfile.ErrNotOwner))

	// The new process exits with no successor: the file goes.
	if err := pidfile.Remove(path, newPID); err != nil {
		log.Fatal(err)
	}
	_, err = pidfile.Read(path)
	fmt.Println("pidfile gone:", errors.Is(err, fs.ErrNotExist))

	// Output:
	// pidfile names 4377
	// old process is owner: false
	// pidfile gone: true
}
