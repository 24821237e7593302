package sdk_test

import (
	"fmt"

	"github.com/nylon-functions/nylon/functions/sdk"
)

func ExampleAppendJSONString() {
	body := []byte(`{"message":`)
	body = sdk.AppendJSONString(body, `hello, "<world>"`)
	body = append(body, '}')
	fmt.Println(string(body))
	// Output: {"message":"hello, \"\u003cworld\u003e\""}
}

func ExampleCanonicalHeaderKey() {
	fmt.Println(sdk.CanonicalHeaderKey("x-forwarded-for"))
	// Output: X-Forwarded-For
}

func ExampleHeader() {
	h := sdk.Header{}
	h.Add("accept", "text/html")
	h.Add("Accept", "application/json")
	fmt.Println(h.Get("ACCEPT"), h.Values("accept"))
	// Output: text/html [text/html application/json]
}
