// Package fccontract checks HTTP bodies against Firecracker's Swagger 2.0 API
// spec (firecracker-v1.16.1.yaml), so that what banger's driver sends and
// what the fake answers are held to the real API. It implements the subset
// of Swagger 2.0 that spec uses: $ref to #/definitions, objects with
// required and properties (unknown properties rejected, as Firecracker's
// deny_unknown_fields does), arrays, string/integer/boolean, enum, minimum
// and maximum.
//
// The spec file is never copied into the repository: Find locates it beside
// the checkout (../shared/firecracker/) or through BANGER_FC_SPEC.
package fccontract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/banger-dev/banger/internal/envknob"
)

// SpecFile is the spec's file name under ../shared/firecracker/.
const SpecFile = "firecracker-v1.16.1.yaml"

// ErrSpecAbsent is returned by Find when the spec is not beside the checkout.
var ErrSpecAbsent = errors.New("firecracker API spec not found")

// Find returns the spec path: $BANGER_FC_SPEC, else
// <repo root>/../shared/firecracker/firecracker-v1.16.1.yaml, the repo root
// being the nearest directory above the working directory with a go.mod.
func Find() (string, error) {
	if p := envknob.FCSpec.Value(); p != "" {
		if _, err := os.Stat(p); err != nil {
			// Set but wrong is a configuration error, not a reason to skip.
			return "", fmt.Errorf("BANGER_FC_SPEC=%s: %w", p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared", "firecracker", SpecFile)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%w at %s (set BANGER_FC_SPEC to its path)", ErrSpecAbsent, p)
			}
			return filepath.Clean(p), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory (set BANGER_FC_SPEC)", ErrSpecAbsent)
		}
		dir = parent
	}
}

// Spec is a loaded Swagger 2.0 document.
type Spec struct {
	Version     string
	Paths       map[string]map[string]*Operation // path template -> lower-case method
	Definitions map[string]*Schema

	routes []route
}

type route struct {
	template string
	re       *regexp.Regexp
}

// Operation is one method on one path.
type Operation struct {
	Parameters []Parameter          `yaml:"parameters"`
	Responses  map[string]*Response `yaml:"responses"` // "200", "204", "default"
}

type Parameter struct {
	Name     string  `yaml:"name"`
	In       string  `yaml:"in"` // "body" | "path"
	Required bool    `yaml:"required"`
	Schema   *Schema `yaml:"schema"`
}

type Response struct {
	Schema *Schema `yaml:"schema"`
}

// Schema is the subset of a Swagger schema object the spec uses.
type Schema struct {
	Ref                  string             `yaml:"$ref"`
	Type                 string             `yaml:"type"`
	Required             []string           `yaml:"required"`
	Properties           map[string]*Schema `yaml:"properties"`
	Items                *Schema            `yaml:"items"`
	Enum                 []string           `yaml:"enum"`
	Minimum              *float64           `yaml:"minimum"`
	Maximum              *float64           `yaml:"maximum"`
	AdditionalProperties any                `yaml:"additionalProperties"`
}

// Load reads and parses the spec at path.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Swagger     string                           `yaml:"swagger"`
		Info        struct{ Version string }         `yaml:"info"`
		Paths       map[string]map[string]*Operation `yaml:"paths"`
		Definitions map[string]*Schema               `yaml:"definitions"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if doc.Swagger != "2.0" {
		return nil, fmt.Errorf("%s: swagger %q, want 2.0", path, doc.Swagger)
	}
	s := &Spec{Version: doc.Info.Version, Paths: doc.Paths, Definitions: doc.Definitions}
	for tmpl := range doc.Paths {
		parts := strings.Split(tmpl, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
				parts[i] = `[^/]+`
			} else {
				parts[i] = regexp.QuoteMeta(p)
			}
		}
		s.routes = append(s.routes, route{tmpl, regexp.MustCompile("^" + strings.Join(parts, "/") + "$")})
	}
	// Literal paths before templated ones, for a stable match.
	sort.Slice(s.routes, func(i, j int) bool { return s.routes[i].template < s.routes[j].template })
	return s, nil
}

// Operation finds the operation for a concrete request path.
func (s *Spec) Operation(method, path string) (*Operation, string, error) {
	for _, r := range s.routes {
		if !r.re.MatchString(path) {
			continue
		}
		if op := s.Paths[r.template][strings.ToLower(method)]; op != nil {
			return op, r.template, nil
		}
		return nil, r.template, fmt.Errorf("%s %s: the spec has no %s on %s", method, path, method, r.template)
	}
	return nil, "", fmt.Errorf("%s %s: no such path in the spec", method, path)
}

// ValidateRequest checks a request body against the operation's body
// parameter.
func (s *Spec) ValidateRequest(method, path string, body []byte) error {
	op, tmpl, err := s.Operation(method, path)
	if err != nil {
		return err
	}
	var param *Parameter
	for i := range op.Parameters {
		if op.Parameters[i].In == "body" {
			param = &op.Parameters[i]
		}
	}
	empty := len(bytes.TrimSpace(body)) == 0
	switch {
	case param == nil && !empty:
		return fmt.Errorf("%s %s: the spec takes no body, got %s", method, tmpl, body)
	case param == nil:
		return nil
	case empty && param.Required:
		return fmt.Errorf("%s %s: body required", method, tmpl)
	case empty:
		return nil
	}
	return s.validateJSON(method+" "+tmpl, body, param.Schema)
}

// ValidateResponse checks a response body against the operation's schema
// for status (or its "default" response).
func (s *Spec) ValidateResponse(method, path string, status int, body []byte) error {
	op, tmpl, err := s.Operation(method, path)
	if err != nil {
		return err
	}
	resp := op.Responses[strconv.Itoa(status)]
	if resp == nil {
		resp = op.Responses["default"]
	}
	if resp == nil {
		return fmt.Errorf("%s %s: status %d not in the spec", method, tmpl, status)
	}
	where := fmt.Sprintf("%s %s -> %d", method, tmpl, status)
	if resp.Schema == nil {
		if len(bytes.TrimSpace(body)) != 0 {
			return fmt.Errorf("%s: the spec has no body, got %s", where, body)
		}
		return nil
	}
	return s.validateJSON(where, body, resp.Schema)
}

// ValidateDefinition checks a JSON document against a named definition.
func (s *Spec) ValidateDefinition(name string, body []byte) error {
	return s.validateJSON(name, body, &Schema{Ref: "#/definitions/" + name})
}

func (s *Spec) validateJSON(where string, body []byte, schema *Schema) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%s: body is not JSON: %w", where, err)
	}
	if errs := s.validate("$", v, schema, nil); len(errs) > 0 {
		return fmt.Errorf("%s: %s", where, strings.Join(errs, "; "))
	}
	return nil
}

// validate appends one message per violation.
func (s *Spec) validate(at string, v any, sc *Schema, errs []string) []string {
	if sc == nil {
		return errs
	}
	if sc.Ref != "" {
		name, ok := strings.CutPrefix(sc.Ref, "#/definitions/")
		def := s.Definitions[name]
		if !ok || def == nil {
			return append(errs, fmt.Sprintf("%s: unresolvable $ref %s", at, sc.Ref))
		}
		return s.validate(at, v, def, errs)
	}
	switch sc.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want object, got %s", at, jsonType(v)))
		}
		for _, r := range sc.Required {
			if val, ok := m[r]; !ok || val == nil {
				errs = append(errs, fmt.Sprintf("%s: required property %q missing", at, r))
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			prop, known := sc.Properties[k]
			if !known {
				if b, _ := sc.AdditionalProperties.(bool); b || isSchema(sc.AdditionalProperties) {
					continue
				}
				errs = append(errs, fmt.Sprintf("%s: unknown property %q", at, k))
				continue
			}
			// Optional properties may be null (Firecracker's Option<T>).
			if m[k] == nil {
				continue
			}
			errs = s.validate(at+"."+k, m[k], prop, errs)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want array, got %s", at, jsonType(v)))
		}
		for i, item := range a {
			errs = s.validate(fmt.Sprintf("%s[%d]", at, i), item, sc.Items, errs)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want string, got %s", at, jsonType(v)))
		}
		if len(sc.Enum) > 0 && !contains(sc.Enum, str) {
			errs = append(errs, fmt.Sprintf("%s: %q not one of %v", at, str, sc.Enum))
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			return append(errs, fmt.Sprintf("%s: want %s, got %s", at, sc.Type, jsonType(v)))
		}
		f, err := n.Float64()
		if err != nil || (sc.Type == "integer" && f != math.Trunc(f)) {
			return append(errs, fmt.Sprintf("%s: want %s, got %s", at, sc.Type, n))
		}
		if sc.Minimum != nil && f < *sc.Minimum {
			errs = append(errs, fmt.Sprintf("%s: %s below minimum %v", at, n, *sc.Minimum))
		}
		if sc.Maximum != nil && f > *sc.Maximum {
			errs = append(errs, fmt.Sprintf("%s: %s above maximum %v", at, n, *sc.Maximum))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return append(errs, fmt.Sprintf("%s: want boolean, got %s", at, jsonType(v)))
		}
	case "":
		// No type: anything goes (e.g. MMDS contents).
	default:
		errs = append(errs, fmt.Sprintf("%s: schema type %q not supported by this validator", at, sc.Type))
	}
	return errs
}

// Properties returns a definition's property names (for checking the
// driver's struct tags against the spec).
func (s *Spec) Properties(definition string) (map[string]bool, error) {
	def := s.Definitions[definition]
	if def == nil {
		return nil, fmt.Errorf("no definition %s in the spec", definition)
	}
	out := map[string]bool{}
	for k := range def.Properties {
		out[k] = true
	}
	return out, nil
}

func isSchema(v any) bool { _, ok := v.(map[string]any); return ok }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}
