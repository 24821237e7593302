package gateway

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/nylon-functions/nylon/protocol"
)

func TestHeaderOpsRefuseUnsafeOnes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := http.Header{"Content-Length": {"5"}}
	applyResponseHeaderOps(h, []protocol.Op{
		{Code: protocol.OpSetResponseHeader, Key: "X-Ok", Value: []byte("1")},
		{Code: protocol.OpSetResponseHeader, Key: "Content-Length", Value: []byte("99")},
		{Code: protocol.OpSetResponseHeader, Key: "X-Bad", Value: []byte("a\nb")},
		{Code: protocol.OpSetResponseHeader, Key: "Bad Name", Value: []byte("x")},
		{Code: protocol.OpRemoveResponseHeader, Key: "transfer-encoding"},
	}, log)
	if h.Get("X-Ok") != "1" || h.Get("Content-Length") != "5" || h.Get("X-Bad") != "" || len(h) != 2 {
		t.Fatalf("headers %v", h)
	}
	q := &protocol.HTTPRequest{Headers: []protocol.Header{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}, {Name: "B", Value: "3"}}}
	if !applyInvocationHeaderOp(q, &protocol.Op{Code: protocol.OpSetRequestHeader, Key: "x-a", Value: []byte("9")}, log) {
		t.Fatal("valid op refused")
	}
	if len(q.Headers) != 2 || q.Headers[1] != (protocol.Header{Name: "X-A", Value: "9"}) {
		t.Fatalf("invocation headers %v", q.Headers)
	}
	if applyInvocationHeaderOp(q, &protocol.Op{Code: protocol.OpSetRequestHeader, Key: "Host", Value: []byte("evil")}, log) {
		t.Fatal("Host mutation accepted")
	}
}
