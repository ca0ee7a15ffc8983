package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// FuzzHandlers feeds arbitrary methods, paths and bodies to the handler: it
// must never panic, and must answer with one of its documented statuses and
// a JSON body.
func FuzzHandlers(f *testing.F) {
	h := newProcTree(f, true).handler()
	f.Add("GET", "/healthz", "")
	f.Add("POST", "/v1/info", `{"x":1}`)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		req := &http.Request{
			Method: method,
			URL:    &url.URL{Path: path},
			Header: http.Header{},
			Body:   http.NoBody,
		}
		if body != "" {
			req.Body = httptest.NewRequest("POST", "/", strings.NewReader(body)).Body
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%q %q: status %d: %s", method, path, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK {
			if path != HealthPath && path != InfoPath {
				t.Fatalf("%q %q answered 200", method, path)
			}
			return
		}
		var e api.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
			t.Fatalf("%q %q: error body %q is not an api.Error (%v)", method, path, rec.Body, err)
		}
	})
}
