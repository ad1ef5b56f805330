package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Limits on what the parser accepts from a server. Lines are also bounded
// by the bufio.Reader's size.
const (
	maxKeep    = 256 // body bytes kept for Stats.Bodies; the rest is read and discarded
	maxHeaders = 128 // header (or trailer) lines per response
	maxInterim = 8   // 1xx responses skipped before the final one
)

// response is the part of an HTTP/1.x response the load generator needs.
type response struct {
	status  int
	close   bool  // the server will close the connection after this response
	chunked bool  // Transfer-Encoding: chunked
	length  int64 // Content-Length, or -1 if absent
	body    []byte
	size    int64 // body bytes read, of which body holds at most maxKeep
}

// protoError is a response that does not follow HTTP/1.1 closely enough
// to be read to its end. what is short and bounded: it becomes part of a
// Stats.Errors key.
type protoError struct{ what string }

func (e *protoError) Error() string { return "loadgen: malformed response: " + e.what }

func malformed(what string) error { return &protoError{what} }

// readResponse reads one complete response from br, skipping interim 1xx
// responses (101 is final). The first maxKeep bytes of the body are stored
// in scratch, which resp.body then shares.
//
// If no byte of the response arrives, the read error is returned as is
// (io.EOF for a clean close); an end of input anywhere after the first byte
// is io.ErrUnexpectedEOF.
func readResponse(br *bufio.Reader, scratch []byte) (resp response, err error) {
	if _, err := br.Peek(1); err != nil {
		return response{}, err
	}
	defer func() {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}()
	for interim := 0; ; interim++ {
		resp, err = readHead(br)
		if err != nil {
			return resp, err
		}
		if resp.status < 200 && resp.status != 101 {
			if interim == maxInterim {
				return resp, malformed("too many 1xx responses")
			}
			continue
		}
		return resp, readBody(br, &resp, scratch)
	}
}

// readHead reads a status line and headers.
func readHead(br *bufio.Reader) (response, error) {
	resp := response{length: -1}
	line, err := readLine(br)
	if err != nil {
		return resp, err
	}
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	var http10 bool
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		return resp, malformed("status line")
	}
	if len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return resp, malformed("status line")
	}
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return resp, malformed("status line")
		}
		resp.status = resp.status*10 + int(c-'0')
	}
	if resp.status < 100 {
		return resp, malformed("status line")
	}

	var keepAlive bool
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			return resp, err
		}
		if len(line) == 0 {
			break
		}
		if n == maxHeaders {
			return resp, malformed("too many headers")
		}
		if line[0] == ' ' || line[0] == '\t' {
			return resp, malformed("folded header")
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return resp, malformed("header")
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					resp.close = true
				case bytes.EqualFold(tok, []byte("keep-alive")):
					keepAlive = true
				}
			}
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseLength(value)
			if !ok || (resp.length >= 0 && n != resp.length) {
				return resp, malformed("content-length")
			}
			resp.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// Only a single "chunked" is supported; anything else
			// (gzip, chunked twice) would leave the body unreadable.
			if resp.chunked || !bytes.EqualFold(value, []byte("chunked")) {
				return resp, malformed("transfer-encoding")
			}
			resp.chunked = true
		}
	}
	if http10 && !keepAlive {
		resp.close = true
	}
	return resp, nil
}

// readBody reads resp's body, keeping its first bytes in scratch.
func readBody(br *bufio.Reader, resp *response, scratch []byte) error {
	if cap(scratch) < maxKeep {
		scratch = make([]byte, 0, maxKeep)
	}
	resp.body = scratch[:0]
	switch {
	case resp.status == 101:
		// The connection now speaks another protocol; there is no body
		// to read and nothing more to do with the connection.
		resp.close = true
		return nil
	case resp.status == 204 || resp.status == 304:
		return nil
	case resp.chunked:
		return readChunked(br, resp)
	case resp.length >= 0:
		return readN(br, resp, resp.length)
	}
	// Without Content-Length or chunking the body runs to the end of the
	// connection, so a truncated body would be indistinguishable from a
	// complete one. That makes a 2xx unverifiable, which is a failure.
	// Anything else is a failure anyway, and reported by its status.
	resp.close = true
	if resp.status/100 == 2 {
		return malformed("no content-length")
	}
	return nil
}

// readN reads n body bytes.
func readN(br *bufio.Reader, resp *response, n int64) error {
	if room := int64(maxKeep - len(resp.body)); room > 0 {
		k := int(min(room, n))
		start := len(resp.body)
		resp.body = resp.body[:start+k] // readBody gave it room for maxKeep
		got, err := io.ReadFull(br, resp.body[start:])
		resp.body = resp.body[:start+got]
		resp.size += int64(got)
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	for n > 0 {
		// bufio.Reader.Discard takes an int; stay well inside it.
		k := int(min(n, 1<<20))
		got, err := br.Discard(k)
		resp.size += int64(got)
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

// readChunked reads a chunked body and its trailers.
func readChunked(br *bufio.Reader, resp *response) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";")) // chunk extensions are ignored
		n, ok := parseHex(bytes.Trim(size, " \t"))
		if !ok {
			return malformed("chunk size")
		}
		if n == 0 {
			break
		}
		if err := readN(br, resp, n); err != nil {
			return err
		}
		line, err = readLine(br)
		if err != nil {
			return err
		}
		if len(line) != 0 {
			return malformed("chunk end")
		}
	}
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if n == maxHeaders {
			return malformed("too many trailers")
		}
	}
}

// readLine returns the next line without its "\n" or "\r\n". The slice is
// valid until the next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, malformed("line too long")
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseHex parses a chunk size: hex digits only.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}
