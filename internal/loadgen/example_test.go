package loadgen_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/nylon-functions/nylon/internal/loadgen"
)

// Load a server with 100 GETs over 4 connections, checking every body.
func ExamplePool_Run() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello, "+r.URL.Query().Get("name"))
	}))
	defer srv.Close()

	spec, err := loadgen.ParseURL(srv.URL + "/hello?name=x")
	if err != nil {
		fmt.Println(err)
		return
	}
	spec.ExpectBody, spec.CheckBody = []byte("hello, x"), true
	ctx := context.Background()
	pool, err := loadgen.DialPool(ctx, spec, 4)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	res, err := pool.Run(ctx, loadgen.Options{Requests: 100})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := res.Summary()
	fmt.Println(s.Requests, "requests,", s.Errors, "errors, statuses", s.Statuses)
	fmt.Println("p50 <= p99 <= max:", s.LatencyMS.P50 <= s.LatencyMS.P99 && s.LatencyMS.P99 <= s.LatencyMS.Max)
	// Output:
	// 100 requests, 0 errors, statuses map[200:100]
	// p50 <= p99 <= max: true
}

// A URL the generator cannot speak is refused before any dial.
func ExampleParseURL() {
	_, err := loadgen.ParseURL("ftp://example.com/")
	fmt.Println(err)
	// Output:
	// unsupported scheme: "ftp://example.com/": want an http:// or https:// URL
}
