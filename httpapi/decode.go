package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/diffute/diffute"
)

// readJSONBody checks the content type and reads the whole body, at most limit bytes.
// Reading synchronously into memory (the limit is small) keeps no goroutine behind and
// lets the decoder errors be located in the bytes afterwards.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, diffute.FieldErrorf(diffute.EUNSUPPORTED, "Content-Type", "Content-Type must be application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return nil, diffute.FieldErrorf(diffute.EUNSUPPORTED, "Content-Type", "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, diffute.FieldErrorf(diffute.EUNSUPPORTED, "Content-Type", "the body must be UTF-8")
	}
	tooLarge := diffute.Errorf(diffute.ETOOLARGE, "the body must be at most %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		return nil, diffute.Errorf(diffute.EINVALID, "could not read the body: %v", err)
	}
	return body, nil
}

// decodeInferenceRequest parses body strictly: one JSON object, only known fields,
// no key twice, values of the right JSON type, nothing after it. Errors name the
// field path ("prompts[0].num_images"); syntax errors give the byte offset.
//
// A first pass walks the tokens against the shape of diffute.InferenceRequest, because
// encoding/json reports neither the array index of a bad value nor the place of an
// unknown field; the second pass is the ordinary decoder.
func decodeInferenceRequest(body []byte) (*diffute.InferenceRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, diffute.Errorf(diffute.EINVALID, "the body is empty; send a JSON object")
	}
	var req diffute.InferenceRequest
	if err := checkShape(body, reflect.TypeOf(req)); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		// checkShape has already rejected everything the decoder would; keep a
		// readable answer in case the two ever disagree.
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, diffute.FieldErrorf(diffute.EUNPROCESSABLE, te.Field, "must be of type %s", jsonKind(te.Type))
		}
		return nil, diffute.Errorf(diffute.EINVALID, "invalid JSON: %v", err)
	}
	return &req, nil
}

// checkShape walks the JSON in body and compares it with the Go type t.
func checkShape(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := shapeWalker{dec: dec}
	tok, err := w.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return diffute.Errorf(diffute.EINVALID, "the body must be a JSON object")
	}
	if err := w.object(t, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return diffute.Errorf(diffute.EINVALID, "unexpected data after the JSON object at byte offset %d", w.offset)
	}
	return nil
}

type shapeWalker struct {
	dec    *json.Decoder
	offset int64 // where the last token started to be read
}

func (w *shapeWalker) token() (json.Token, error) {
	w.offset = w.dec.InputOffset()
	tok, err := w.dec.Token()
	if err == nil {
		return tok, nil
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return nil, diffute.Errorf(diffute.EINVALID, "invalid JSON at byte offset %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, diffute.Errorf(diffute.EINVALID, "invalid JSON: the body ends at byte offset %d in the middle of a value", w.dec.InputOffset())
	}
	return nil, diffute.Errorf(diffute.EINVALID, "invalid JSON at byte offset %d", w.offset)
}

// object walks the members of an object whose '{' was just read.
func (w *shapeWalker) object(t reflect.Type, path string) error {
	fields := jsonFields(t)
	seen := make(map[string]bool, len(fields))
	for w.dec.More() {
		tok, err := w.token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		child := name
		if path != "" {
			child = path + "." + name
		}
		ft, ok := fields[name]
		if !ok {
			return diffute.FieldErrorf(diffute.EUNPROCESSABLE, child, "unknown field %q", truncate(name, 64))
		}
		if seen[name] {
			return diffute.FieldErrorf(diffute.EUNPROCESSABLE, child, "appears more than once")
		}
		seen[name] = true
		if err := w.value(ft, child); err != nil {
			return err
		}
	}
	_, err := w.token() // '}'
	return err
}

// value walks one value that should have Go type t.
func (w *shapeWalker) value(t reflect.Type, path string) error {
	tok, err := w.token()
	if err != nil {
		return err
	}
	if tok == nil { // null leaves the field at its zero value; validation judges that
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	mismatch := func() error {
		return diffute.FieldErrorf(diffute.EUNPROCESSABLE, path, "must be %s", jsonKind(t))
	}
	switch v := tok.(type) {
	case json.Delim:
		switch {
		case v == '{' && t.Kind() == reflect.Struct:
			return w.object(t, path)
		case v == '[' && t.Kind() == reflect.Slice:
			for i := 0; w.dec.More(); i++ {
				if err := w.value(t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
			_, err := w.token() // ']'
			return err
		}
		return mismatch()
	case string:
		if t.Kind() != reflect.String {
			return mismatch()
		}
	case json.Number:
		switch t.Kind() {
		case reflect.Int, reflect.Int64, reflect.Int32:
			if _, err := strconv.ParseInt(v.String(), 10, t.Bits()); err != nil {
				if ne, ok := errors.AsType[*strconv.NumError](err); ok && errors.Is(ne.Err, strconv.ErrRange) {
					return diffute.FieldErrorf(diffute.EUNPROCESSABLE, path, "is out of range")
				}
				return diffute.FieldErrorf(diffute.EUNPROCESSABLE, path, "must be an integer")
			}
		case reflect.Float64, reflect.Float32:
			if _, err := strconv.ParseFloat(v.String(), t.Bits()); err != nil {
				return diffute.FieldErrorf(diffute.EUNPROCESSABLE, path, "is out of range")
			}
		default:
			return mismatch()
		}
	case bool:
		if t.Kind() != reflect.Bool {
			return mismatch()
		}
	}
	return nil
}

// jsonFields maps the JSON member names of struct t to their types, following
// encoding/json's tag rules for the plain (non-embedded) fields the request uses.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// jsonKind names the JSON type that decodes into t, for error messages.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a JSON value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a JSON value"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
