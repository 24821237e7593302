package platform_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nylon-functions/nylon/internal/testutil"
	"github.com/nylon-functions/nylon/platform"
)

// Deploy bodies held in memory are bounded: while MaxUploadsInMemory
// uploads are still sending their bodies, the next deploy waits before its
// body is read, and goes through once one of them ends.
func TestAdminBoundsUploadsInMemory(t *testing.T) {
	a := newAdminEnv(t, nil)
	hello := guest(t, helloDir)

	type held struct {
		w    *io.PipeWriter
		done chan int
	}
	var slow []held
	for range platform.MaxUploadsInMemory {
		pr, pw := io.Pipe()
		req, err := http.NewRequest(http.MethodPut, a.base+"/v1/functions/slow", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/wasm")
		h := held{w: pw, done: make(chan int, 1)}
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				h.done <- 0
				return
			}
			resp.Body.Close()
			h.done <- resp.StatusCode
		}()
		// A few bytes: the body is being read, the upload holds its slot.
		if _, err := pw.Write(hello[:16]); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, h)
	}
	t.Cleanup(func() {
		for _, h := range slow {
			_ = h.w.CloseWithError(io.ErrUnexpectedEOF)
		}
	})

	// A slow upload's bytes reach the client's transport before its
	// handler takes a slot: wait for the server to hold all of them, or a
	// busy machine lets the next deploy in first.
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := a.admin.UploadsHeld(); n < platform.MaxUploadsInMemory {
			return fmt.Errorf("%d of %d uploads hold a slot", n, platform.MaxUploadsInMemory)
		}
		return nil
	})
	done := make(chan int, 1)
	go func() {
		resp, _ := a.deployRaw("/v1/functions/next", hello)
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		t.Fatalf("a deploy beside %d uploads in progress was answered (%d) without waiting", platform.MaxUploadsInMemory, code)
	case <-time.After(500 * time.Millisecond):
	}
	// One slow upload fails (truncated body): its slot goes to the waiter.
	_ = slow[0].w.CloseWithError(io.ErrUnexpectedEOF)
	select {
	case code := <-done:
		if code != http.StatusCreated {
			t.Fatalf("the waiting deploy: %d, want 201", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting deploy did not go through after a slot freed")
	}
}
