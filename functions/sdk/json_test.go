package sdk

import (
	"encoding/json"
	"testing"
)

var jsonStringCases = []string{
	"", "hello, world", `"quoted" \back\slash`, "<script>&</script>",
	"\x00\x01\b\f\n\r\t\x1f\x7f", "héllo 世界 🎉", "\u2028\u2029", "bad \xff utf8 \xe2\x82",
	"end\\", "\"", "a\u2027b\u202ac",
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStringCases {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s string) {
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
		t.Errorf("AppendJSONString(%q) = %s, want %s", s, got[1:], want)
	}
}
