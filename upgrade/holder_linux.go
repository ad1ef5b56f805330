//go:build linux

package upgrade

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// unknownHolder says who holds an address holderOf could not name.
const unknownHolder = "held by a process not found in /proc (another user, or another network namespace?)"

// holderOf names the process that holds the socket network/addr is bound
// to, from /proc: the socket's inode from /proc/net/*, then the process
// with a descriptor on that inode. It returns "" when it cannot tell (the
// holder is in another network namespace or owned by another user).
func holderOf(network, addr string) string {
	inode := socketInode(network, addr)
	if inode == "" {
		return ""
	}
	pid := pidWithSocket(inode)
	if pid == 0 {
		return ""
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return fmt.Sprintf("PID %d (%s)", pid, strings.TrimSpace(string(comm)))
}

// socketInode finds the inode of the socket bound to addr.
func socketInode(network, addr string) string {
	if network == "unix" || network == "unixpacket" || network == "unixgram" {
		return unixInode(addr)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return ""
	}
	want := net.ParseIP(host) // nil: any address
	var files []string
	var listenState string
	switch network {
	case "tcp", "tcp4", "tcp6":
		files, listenState = []string{"/proc/net/tcp", "/proc/net/tcp6"}, "0A"
	case "udp", "udp4", "udp6":
		files, listenState = []string{"/proc/net/udp", "/proc/net/udp6"}, "07"
	default:
		return ""
	}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != listenState {
				continue
			}
			ip, p, ok := parseProcAddr(fl[1])
			if !ok || p != port {
				continue
			}
			if want == nil || want.IsUnspecified() || ip.IsUnspecified() || ip.Equal(want) {
				f.Close()
				return fl[9]
			}
		}
		f.Close()
	}
	return ""
}

// parseProcAddr decodes "0100007F:1F90": the address as 32-bit words in
// host byte order, the port as a plain hex number.
func parseProcAddr(s string) (net.IP, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, false
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, 0, false
	}
	ip := make(net.IP, len(b))
	for i := 0; i < len(b); i += 4 {
		binary.BigEndian.PutUint32(ip[i:], binary.NativeEndian.Uint32(b[i:]))
	}
	return ip, int(port), true
}

// unixInode finds the inode of the unix socket bound to path.
func unixInode(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: Num RefCount Protocol Flags Type St Inode Path
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 8 && (fl[7] == abs || !filepath.IsAbs(path) && fl[7] == path) {
			return fl[6]
		}
	}
	return ""
}

// pidWithSocket finds a process with a descriptor on socket inode.
func pidWithSocket(inode string) int {
	target := "socket:[" + inode + "]"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); err == nil && l == target {
				return pid
			}
		}
	}
	return 0
}
