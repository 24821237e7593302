// Command auth is a request_filter that checks a bearer token.
//
// Config:
//   - token: the accepted bearer token (required; with no token configured
//     every request is refused).
//   - user: the value of X-User sent upstream on success (default
//     "authenticated").
//
// A missing or wrong token ends the request with 401, WWW-Authenticate:
// Bearer and an RFC 9457 problem+json body. A right token continues to the
// upstream with the request header X-User set (and Authorization removed, so
// the secret does not travel further).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o auth.wasm .
package main

import (
	"crypto/subtle"
	"encoding/json"
	"strings"

	"github.com/nylon-functions/nylon/functions/sdk"
)

// problem is an RFC 9457 problem details object.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func init() {
	sdk.RequestFilter(func(ctx *sdk.Context) {
		want := ctx.Config("token")
		got, ok := bearer(ctx.Request().Header("Authorization"))
		switch {
		case !ok:
			unauthorized(ctx, "", "missing bearer token")
			return
		case want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1:
			unauthorized(ctx, "invalid_token", "invalid bearer token")
			return
		}
		user := ctx.Config("user")
		if user == "" {
			user = "authenticated"
		}
		req := ctx.Request()
		req.SetHeader("X-User", user)
		req.RemoveHeader("Authorization")
		if err := ctx.Err(); err != nil {
			ctx.Error(err)
			return
		}
		ctx.Next()
	})
}

// bearer extracts the token of an "Authorization: Bearer <token>" value; the
// scheme is case-insensitive (RFC 9110 11.1).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// unauthorized ends the request with 401 and a problem+json body. The
// challenge carries an error code only when a token was presented (RFC 6750
// 3.1).
func unauthorized(ctx *sdk.Context, code, detail string) {
	body, err := json.Marshal(problem{
		Type:   "about:blank",
		Title:  "Unauthorized",
		Status: 401,
		Detail: detail,
	})
	if err != nil {
		ctx.Error(err)
		return
	}
	challenge := "Bearer"
	if code != "" {
		challenge += ` error="` + code + `"`
	}
	res := ctx.Response()
	res.SetStatus(401)
	res.SetHeader("WWW-Authenticate", challenge)
	res.SetHeader("Content-Type", "application/problem+json")
	res.Body(body)
	ctx.End()
}

// main is never run: a reactor module starts from its init functions.
func main() {}
