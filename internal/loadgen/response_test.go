package loadgen

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parse(in string) (response, error) {
	return readResponse(bufio.NewReaderSize(strings.NewReader(in), 4096), nil)
}

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		status int
		body   string
		close  bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false},
		{"empty body", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", false},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false},
		{"repeated equal length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok", 200, "ok", false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true},
		{"connection tokens", "HTTP/1.1 200 OK\r\nconnection: Keep-Alive , CLOSE\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 200, "ok", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, "hello world", false},
		{"chunked upper hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", 200, "0123456789", false},
		{"chunked beats length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200, "ok", false},
		{"1xx skipped", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", false},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, "", false},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 101, "", true},
		{"error with body", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", 503, "busy", false},
		{"error without length", "HTTP/1.1 500 Internal Server Error\r\n\r\nwhatever", 500, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := parse(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.status, resp.status)
			assert.Equal(t, tc.body, string(resp.body))
			assert.Equal(t, int64(len(tc.body)), resp.size)
			assert.Equal(t, tc.close, resp.close)
		})
	}
}

func TestReadResponseErrors(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name string
		in   string
		want string // classify("read", err)
	}{
		{"nothing", "", "read: EOF"},
		{"cut in status line", "HTTP/1.1 2", "read: unexpected EOF"},
		{"cut in headers", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "read: unexpected EOF"},
		{"cut in body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", "read: unexpected EOF"},
		{"cut in long body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + long[:500], "read: unexpected EOF"},
		{"cut in chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "read: unexpected EOF"},
		{"no last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "read: unexpected EOF"},
		{"no end of trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "read: unexpected EOF"},
		{"http/2", "HTTP/2 200 OK\r\n\r\n", "malformed: status line"},
		{"not http", "SSH-2.0-OpenSSH\r\n", "malformed: status line"},
		{"short status", "HTTP/1.1 20 OK\r\n\r\n", "malformed: status line"},
		{"long status", "HTTP/1.1 2000 OK\r\n\r\n", "malformed: status line"},
		{"letters in status", "HTTP/1.1 2x0 OK\r\n\r\n", "malformed: status line"},
		{"status below 100", "HTTP/1.1 099 OK\r\n\r\n", "malformed: status line"},
		{"no colon", "HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\nok", "malformed: header"},
		{"space in name", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", "malformed: header"},
		{"folded", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", "malformed: folded header"},
		{"conflicting length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "malformed: content-length"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed: content-length"},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", "malformed: content-length"},
		{"empty length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "malformed: content-length"},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n", "malformed: content-length"},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "malformed: transfer-encoding"},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "malformed: transfer-encoding"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed: chunk size"},
		{"empty chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "malformed: chunk size"},
		{"huge chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", "malformed: chunk size"},
		{"chunk overrun", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", "malformed: chunk end"},
		{"2xx without length", "HTTP/1.1 200 OK\r\n\r\nhello", "malformed: no content-length"},
		{"line too long", "HTTP/1.1 200 OK\r\nX: " + long + "\r\n\r\n", "malformed: line too long"},
		{"too many headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: y\r\n", maxHeaders+1) + "\r\n", "malformed: too many headers"},
		{"too many trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X: y\r\n", maxHeaders+1) + "\r\n", "malformed: too many trailers"},
		{"too many 1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", maxInterim+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "malformed: too many 1xx responses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.in)
			require.Error(t, err)
			assert.Equal(t, tc.want, classify("read", err))
		})
	}
}

// TestReadResponseKeepAlive checks the parser stops exactly at the end of a
// response, so the next one on the connection starts in the right place.
func TestReadResponseKeepAlive(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n" +
		"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nthree" +
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfour"
	br := bufio.NewReader(strings.NewReader(in))
	for _, want := range []string{"one", "two", "three", "four"} {
		resp, err := readResponse(br, nil)
		require.NoError(t, err)
		assert.Equal(t, want, string(resp.body))
	}
	_, err := readResponse(br, nil)
	assert.ErrorIs(t, err, io.EOF)
}

func TestReadResponseLongBody(t *testing.T) {
	body := strings.Repeat("0123456789", 300)
	for name, in := range map[string]string{
		"content-length": "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + body,
		"chunked":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + body[:100] + "\r\nb54\r\n" + body[100:] + "\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := parse(in + "HTTP/1.1 204 No Content\r\n\r\n")
			require.NoError(t, err)
			assert.Equal(t, body[:maxKeep], string(resp.body))
			assert.Equal(t, int64(len(body)), resp.size)
		})
	}
}

// chunk encodes body in chunks of the given sizes (the rest in a last one).
func chunk(body []byte, sizes []byte) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	for _, n := range sizes {
		if n == 0 || int(n) > len(body) {
			continue
		}
		b.WriteString(strings.ToUpper(strconv.FormatInt(int64(n), 16)) + "\r\n")
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	if len(body) > 0 {
		b.WriteString(strconv.FormatInt(int64(len(body)), 16) + ";ext=1\r\n")
		b.Write(body)
		b.WriteString("\r\n")
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// FuzzReadResponse checks the parser never panics or overruns its limits on
// arbitrary input, and that any chunking of a body reads back the same.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), []byte("hello world"), []byte{3})
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n"), []byte(""), []byte{})
	f.Add([]byte("HTTP/1.0 103 x\n\nHTTP/1.0 500\n\n"), []byte("ab"), []byte{1, 1})
	f.Fuzz(func(t *testing.T, in, body, sizes []byte) {
		resp, err := readResponse(bufio.NewReaderSize(bytes.NewReader(in), 4096), nil)
		if err == nil {
			if resp.status < 100 || resp.status > 999 {
				t.Fatalf("status %d", resp.status)
			}
			if len(resp.body) > maxKeep || resp.size < int64(len(resp.body)) {
				t.Fatalf("kept %d of %d body bytes", len(resp.body), resp.size)
			}
		} else if k := classify("read", err); k == "read: other" {
			t.Fatalf("unclassified error %v", err)
		}

		resp, err = readResponse(bufio.NewReaderSize(bytes.NewReader(chunk(body, sizes)), 4096), nil)
		if err != nil {
			t.Fatalf("chunked %q: %v", body, err)
		}
		if want := body[:min(len(body), maxKeep)]; !bytes.Equal(resp.body, want) || resp.size != int64(len(body)) {
			t.Fatalf("chunked %q read back as %q (%d bytes)", body, resp.body, resp.size)
		}
	})
}
