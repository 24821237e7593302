// Package testutil holds helpers used only by tests: an embedded NATS server
// on a random loopback port with JetStream in a temporary directory, polling
// assertions, and the shared build of WebAssembly test modules.
//
// # Example
//
//	func TestX(t *testing.T) {
//		s := testutil.RunNATS(t)
//		nc := testutil.Connect(t, s)
//		testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error { ... })
//	}
package testutil
