package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/diffute/diffute"
)

// POST /v1/images/generations speaks OpenAI's Images API, so that clients made
// for it (the openai SDKs, LiteLLM…) work with their base URL set to
// Diffute's /v1. A request becomes an ordinary job of one prompt: it is
// submitted, queued, limited, metered and stored as a PUT …/media/inference
// would be, and the request waits for it as Prefer: wait does. Errors take
// OpenAI's shape ({"error": {"message", "type", "param", "code"}}), not
// problem details. docs/openai.md is the user's description.

// DefaultOpenAIWait is how long POST /v1/images/generations waits for its job
// unless Server.OpenAIWait says otherwise: OpenAI's clients wait 10 minutes by
// default, and a job that has not ended by then goes on (see generateImages).
const DefaultOpenAIWait = 5 * time.Minute

// DefaultOpenAIProject is the project of a request made with an API key valid
// for every project of its organization and no OpenAI-Project header.
const DefaultOpenAIProject = "default"

// The job a request becomes: its name, and the name of its one prompt (the
// key of its images in the manifest).
const (
	openAIJobName    = "openai-images"
	openAIPromptName = "image"
)

// openAIRequest is the body of POST /v1/images/generations: every member
// OpenAI's API defines for it. A null member is an absent one, as in OpenAI's
// API; nothing else is accepted.
type openAIRequest struct {
	Model             *string `json:"model"`
	Prompt            *string `json:"prompt"`
	N                 *int    `json:"n"`
	Size              *string `json:"size"`
	ResponseFormat    *string `json:"response_format"`
	Quality           *string `json:"quality"`
	Style             *string `json:"style"`
	User              *string `json:"user"`
	Background        *string `json:"background"`
	OutputFormat      *string `json:"output_format"`
	OutputCompression *int    `json:"output_compression"`
	Moderation        *string `json:"moderation"`
	Stream            *bool   `json:"stream"`
	PartialImages     *int    `json:"partial_images"`
}

// OpenAIImagesResponse is the body of a successful POST /v1/images/generations.
type OpenAIImagesResponse struct {
	Created      int64         `json:"created"` // Unix seconds when the request was accepted
	Data         []OpenAIImage `json:"data"`
	OutputFormat string        `json:"output_format"`
	Size         string        `json:"size"`
}

// OpenAIImage is one generated image: its URL or its bytes in base64, as the
// request's response_format asked.
type OpenAIImage struct {
	URL     string `json:"url,omitempty"`
	B64JSON string `json:"b64_json,omitempty"`
}

// OpenAIErrorBody is the body of every error of the OpenAI-compatible API.
type OpenAIErrorBody struct {
	Error OpenAIError `json:"error"`
}

// OpenAIError is an error as OpenAI's API reports it. Param names the request
// member at fault; Param and Code are null when there is none.
type OpenAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// OpenAI's error types.
const (
	openAIInvalidRequest = "invalid_request_error"
	openAIServerError    = "server_error"
	openAIRateLimit      = "requests"
	openAIQuota          = "insufficient_quota"
)

// openAIStatusError is an error answered in OpenAI's shape. noRetry sets
// x-should-retry: false, which OpenAI's SDKs obey instead of retrying on their
// own: a retry after the job was accepted would submit the work again.
type openAIStatusError struct {
	status       int
	typ, message string
	param, code  string // "": null
	noRetry      bool
	// cause is the domain error answered, if any: the failure counts as it
	// does (a bad key as a failed key check, say).
	cause error
}

func (e *openAIStatusError) Error() string { return e.message }
func (e *openAIStatusError) Unwrap() error { return e.cause }

func invalidParam(param, code, format string, args ...any) *openAIStatusError {
	return &openAIStatusError{status: http.StatusBadRequest, typ: openAIInvalidRequest,
		param: param, code: code, message: fmt.Sprintf(format, args...)}
}

// openAIImages handles POST /v1/images/generations. It answers its errors
// itself, in OpenAI's shape, and returns none for problem details.
func (s *Server) openAIImages(w http.ResponseWriter, r *http.Request) error {
	if err := s.generateImages(w, r); err != nil {
		s.writeOpenAIError(w, r, err)
	}
	return nil
}

// generateImages submits the request as a job and answers with its images
// once it has ended. The wait is bounded by Server.OpenAIWait: past it the
// answer is a 504 whose message and Location name the job, which goes on and
// can be read through the native API. A client that goes away leaves its job
// running too (it is metered and its images kept as any job's): once
// accepted, a request is never lost.
func (s *Server) generateImages(w http.ResponseWriter, r *http.Request) error {
	key, project, err := s.openAIKey(r)
	if err != nil {
		return err
	}
	limits := s.limits()
	body, err := readJSONBody(w, r, limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	oreq, err := decodeOpenAIRequest(body)
	if err != nil {
		return err
	}
	req, err := s.openAIInference(r.Context(), oreq, limits)
	if err != nil {
		return err
	}
	job := newJob(key.Org, project, req, time.Now().UTC())
	id, _, replayed, err := s.submit(r, job, req)
	if err != nil {
		return err
	}
	w.Header().Set("Diffute-Job-Id", strconv.FormatInt(id, 10))
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	wait := s.openAIWait()
	ended, done, err := s.waitEnded(r.Context(), key.Org, project, id, wait)
	if err != nil {
		return &jobError{jobID: id, err: err}
	}
	path := jobPath(key.Org, project, id)
	if !done {
		select {
		case <-r.Context().Done():
			s.log().InfoContext(r.Context(), "images client went away; its job goes on",
				"job_id", id, "org", key.Org, "project", project)
			return nil
		default:
		}
		w.Header().Set("Location", path)
		f := &openAIStatusError{status: http.StatusGatewayTimeout, typ: openAIServerError, code: "timeout", noRetry: true,
			message: fmt.Sprintf("the images were not ready within %s; job %d goes on: GET %s with x-api-key reads it", wait, id, path)}
		select {
		case <-s.streams.closing():
			f.status, f.code = http.StatusServiceUnavailable, "shutting_down"
			f.message = fmt.Sprintf("the server is shutting down; job %d goes on: GET %s with x-api-key reads it", id, path)
		default:
		}
		return f
	}
	switch ended.Status {
	case diffute.StatusSucceeded:
	case diffute.StatusFailed:
		return &openAIStatusError{status: http.StatusInternalServerError, typ: openAIServerError, code: "job_failed", noRetry: true,
			message: fmt.Sprintf("job %d failed: %s", id, ended.Error)}
	default:
		return &openAIStatusError{status: http.StatusConflict, typ: openAIInvalidRequest, code: "job_canceled", noRetry: true,
			message: fmt.Sprintf("job %d was canceled before its images were made", id)}
	}
	resp, err := s.openAIResponse(r.Context(), ended, oreq.ResponseFormat != nil && *oreq.ResponseFormat == "b64_json")
	if err != nil {
		return &jobError{jobID: id, err: err}
	}
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}

func (s *Server) openAIWait() time.Duration {
	if s.OpenAIWait <= 0 {
		return DefaultOpenAIWait
	}
	return s.OpenAIWait
}

// openAIKey checks "Authorization: Bearer <key>" and returns the key and the
// project the request acts on: the key's own project, or for a key valid for
// every project of its organization the OpenAI-Project header
// (DefaultOpenAIProject without one). OpenAI-Organization is not read: the
// key decides the organization.
func (s *Server) openAIKey(r *http.Request) (*diffute.APIKey, string, error) {
	header := r.Header.Get("OpenAI-Project")
	key, err := s.limitFailedChecks(r, func() (*diffute.APIKey, error) {
		scheme, secret, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		secret = strings.TrimSpace(secret)
		if !strings.EqualFold(scheme, "Bearer") || secret == "" {
			return nil, &openAIStatusError{status: http.StatusUnauthorized, typ: openAIInvalidRequest, cause: diffute.Errorf(diffute.EUNAUTHORIZED, "no API key"),
				message: "You didn't provide an API key. Send your Diffute API key in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY)."}
		}
		key, err := s.keyBySecret(r.Context(), secret, "Authorization")
		if diffute.ErrorCode(err) == diffute.EUNAUTHORIZED {
			return nil, &openAIStatusError{status: http.StatusUnauthorized, typ: openAIInvalidRequest, code: "invalid_api_key",
				cause: err, message: "Incorrect API key provided."}
		}
		if err != nil {
			return nil, err
		}
		if header != "" && !key.Allows(key.Org, header) {
			return nil, &openAIStatusError{status: http.StatusForbidden, typ: openAIInvalidRequest, code: "mismatched_project",
				cause:   diffute.Errorf(diffute.EFORBIDDEN, "the API key is not valid for this project"),
				message: fmt.Sprintf("The API key is not valid for project %q named by the OpenAI-Project header.", truncate(header, 64))}
		}
		return key, nil
	})
	if err != nil {
		return nil, "", err
	}
	project := key.Project
	if project == "" {
		project = header
	}
	if project == "" {
		project = DefaultOpenAIProject
	}
	if !validTenantName(project) {
		return nil, "", invalidParam("", "", "The OpenAI-Project header must be 1-64 of A-Z, a-z, 0-9, '_', '-' and '.', not starting with '.'.")
	}
	if err := s.rateLimit(key); err != nil {
		return nil, "", err
	}
	return key, project, nil
}

var reflectTypeOpenAIRequest = reflect.TypeFor[openAIRequest]()

// decodeOpenAIRequest parses body strictly, as decodeInferenceRequest does;
// an unknown member is refused as OpenAI refuses one.
func decodeOpenAIRequest(body []byte) (*openAIRequest, error) {
	var req openAIRequest
	fields := jsonFields(reflectTypeOpenAIRequest)
	if err := checkShape(body, reflectTypeOpenAIRequest); err != nil {
		field, msg := diffute.ErrorField(err), diffute.ErrorMessage(err)
		switch {
		case field == "":
			return nil, invalidParam("", "", "We could not parse the JSON body of your request: %s.", msg)
		case fields[field] == nil:
			return nil, invalidParam(truncate(field, 64), "unknown_parameter", "Unknown parameter: '%s'.", truncate(field, 64))
		case strings.HasPrefix(msg, "must be"):
			return nil, invalidParam(field, "invalid_type", "Invalid type for '%s': %s.", field, msg)
		default:
			return nil, invalidParam(field, "", "Invalid '%s': %s.", field, msg)
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, invalidParam("", "", "We could not parse the JSON body of your request: %v.", err)
	}
	return &req, nil
}

// sizeRE matches OpenAI's size values other than "auto": WIDTHxHEIGHT.
var sizeRE = regexp.MustCompile(`^([0-9]{1,5})x([0-9]{1,5})$`)

// openAIInference checks an OpenAI request and turns it into the inference
// request it stands for: one prompt of n images of the size asked (the
// model's native size for "auto"), of the model named (the first served one
// when none is), in the output format asked.
func (s *Server) openAIInference(ctx context.Context, o *openAIRequest, l diffute.Limits) (*diffute.InferenceRequest, error) {
	if o.Prompt == nil {
		return nil, invalidParam("prompt", "missing_required_parameter", "Missing required parameter: 'prompt'.")
	}
	if strings.TrimSpace(*o.Prompt) == "" {
		return nil, invalidParam("prompt", "empty_string", "Invalid 'prompt': empty string. Expected a string with at least one character that is not a space.")
	}
	model := ""
	if o.Model != nil {
		model = *o.Model
	}
	if model == "" {
		if len(s.Models) == 0 {
			return nil, invalidParam("model", "missing_required_parameter", "Missing required parameter: 'model'.")
		}
		model = s.Models[0]
	}
	if s.Models != nil && !slices.Contains(s.Models, model) {
		return nil, &openAIStatusError{status: http.StatusNotFound, typ: openAIInvalidRequest, param: "model", code: "model_not_found",
			message: fmt.Sprintf("The model '%s' does not exist on this deployment; it serves: %s.", truncate(model, 100), strings.Join(s.Models, ", "))}
	}
	n := 1
	if o.N != nil {
		n = *o.N
	}
	if n < 1 {
		return nil, invalidParam("n", "integer_below_min_value", "Invalid 'n': integer below minimum value. Expected a value >= 1, but got %d instead.", n)
	}
	if n > l.MaxImagesPerPrompt {
		return nil, invalidParam("n", "integer_above_max_value", "Invalid 'n': integer above maximum value. Expected a value <= %d, but got %d instead.", l.MaxImagesPerPrompt, n)
	}
	width, height, err := s.openAISize(ctx, o.Size, model, l)
	if err != nil {
		return nil, err
	}
	for _, enum := range []struct {
		param   string
		v       *string
		allowed []string
	}{
		{"response_format", o.ResponseFormat, []string{"url", "b64_json"}},
		{"output_format", o.OutputFormat, []string{diffute.FormatPNG, diffute.FormatJPEG, diffute.FormatWebP}},
		{"quality", o.Quality, []string{"auto", "standard", "hd", "low", "medium", "high"}},
		{"style", o.Style, []string{"vivid", "natural"}},
		{"background", o.Background, []string{"auto", "opaque", "transparent"}},
		{"moderation", o.Moderation, []string{"auto", "low"}},
	} {
		if enum.v != nil && !slices.Contains(enum.allowed, *enum.v) {
			return nil, invalidParam(enum.param, "invalid_value", "Invalid value: '%s'. Supported values are: '%s'.",
				truncate(*enum.v, 40), strings.Join(enum.allowed, "', '"))
		}
	}
	if o.Background != nil && *o.Background == "transparent" {
		return nil, invalidParam("background", "unsupported_value", "Transparent backgrounds are not supported: the models draw opaque images. Use 'opaque' or 'auto'.")
	}
	if c := o.OutputCompression; c != nil && (*c < 0 || *c > 100) {
		return nil, invalidParam("output_compression", "invalid_value", "Invalid 'output_compression': expected a value from 0 to 100, but got %d instead.", *c)
	}
	if o.Stream != nil && *o.Stream {
		return nil, invalidParam("stream", "unsupported_value", "Streaming is not supported: send stream false or leave it out; the answer comes when the images are made.")
	}
	if p := o.PartialImages; p != nil && *p != 0 {
		return nil, invalidParam("partial_images", "unsupported_value", "Partial images need streaming, which is not supported: send 0 or leave it out.")
	}
	format := diffute.FormatPNG
	if o.OutputFormat != nil {
		format = *o.OutputFormat
	}
	req := &diffute.InferenceRequest{
		Name:                openAIJobName,
		PretrainedModelName: model,
		OutputFormat:        format,
		Prompts: []diffute.PromptRequest{{
			Name: openAIPromptName, Prompt: *o.Prompt, NumImages: n, Width: width, Height: height,
		}},
	}
	if err := req.Validate(l, s.Models); err != nil {
		return nil, openAIParamError(err)
	}
	return req, nil
}

// openAISize reads size: "WIDTHxHEIGHT" within the limits, or "auto" (and
// absent) for the model's native size.
func (s *Server) openAISize(ctx context.Context, size *string, model string, l diffute.Limits) (int, int, error) {
	if size == nil || *size == "auto" {
		info, ok, err := s.nativeSize(ctx, model)
		if err != nil {
			return 0, 0, openAIParamError(err)
		}
		if !ok {
			return DefaultNativeSide, DefaultNativeSide, nil
		}
		return info.Width, info.Height, nil
	}
	bad := invalidParam("size", "invalid_value",
		"Invalid value: '%s'. Supported values are: 'auto' and 'WIDTHxHEIGHT', each side a multiple of 8 from %d to %d, width × height at most %d pixels (for example '512x512' or '1024x768').",
		truncate(*size, 40), l.MinSide, l.MaxSide, l.MaxPixels)
	m := sizeRE.FindStringSubmatch(*size)
	if m == nil {
		return 0, 0, bad
	}
	w, _ := strconv.Atoi(m[1])
	h, _ := strconv.Atoi(m[2])
	for _, side := range []int{w, h} {
		if side < l.MinSide || side > l.MaxSide || side%8 != 0 {
			return 0, 0, bad
		}
	}
	if w*h > l.MaxPixels {
		return 0, 0, bad
	}
	return w, h, nil
}

// openAIParams maps the fields of a native request, as Validate names them,
// to the OpenAI members they come from.
var openAIParams = map[string]string{
	"pretrained_model_name": "model",
	"output_format":         "output_format",
	"prompts":               "n",
	"prompts[0].prompt":     "prompt",
	"prompts[0].num_images": "n",
	"prompts[0].width":      "size",
	"prompts[0].height":     "size",
}

// openAIParamError renders a domain error of the native request in OpenAI's
// terms: its field becomes the OpenAI member it comes from.
func openAIParamError(err error) *openAIStatusError {
	param := openAIParams[diffute.ErrorField(err)]
	msg := diffute.ErrorMessage(err)
	if param != "" {
		msg = fmt.Sprintf("Invalid '%s': %s.", param, msg)
	}
	status, typ := httpStatus(err), openAIInvalidRequest
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	if status >= 500 {
		typ = openAIServerError
	}
	return &openAIStatusError{status: status, typ: typ, param: param, message: msg, cause: err}
}

// openAIResponse lists the images of job, a succeeded one: URLs that open
// without a key (as the manifest lists them), or the bytes in base64.
func (s *Server) openAIResponse(ctx context.Context, job *diffute.Job, inline bool) (*OpenAIImagesResponse, error) {
	if len(job.Prompts) != 1 {
		return nil, fmt.Errorf("job %d has %d prompts, not 1", job.ID, len(job.Prompts))
	}
	p := job.Prompts[0]
	resp := &OpenAIImagesResponse{
		Created:      job.CreatedAt.Unix(),
		Data:         make([]OpenAIImage, 0, len(p.Images)),
		OutputFormat: job.OutputFormat,
		Size:         fmt.Sprintf("%dx%d", p.Width, p.Height),
	}
	if !inline {
		m, err := diffute.Manifests{Media: s.Media, TTL: s.mediaTTL(), Retention: s.mediaRetention()}.For(ctx, job, "", "")
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		for _, u := range m.Images[p.Name] {
			resp.Data = append(resp.Data, OpenAIImage{URL: u})
		}
		return resp, nil
	}
	for _, key := range p.Images {
		data, err := s.readMedia(ctx, key)
		if err != nil {
			return nil, err
		}
		resp.Data = append(resp.Data, OpenAIImage{B64JSON: base64.StdEncoding.EncodeToString(data)})
	}
	return resp, nil
}

func (s *Server) readMedia(ctx context.Context, key string) ([]byte, error) {
	f, _, err := s.Media.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", key, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", key, err)
	}
	return data, nil
}

// writeOpenAIError renders err in OpenAI's error shape. Domain errors keep
// their status (422 becomes OpenAI's 400); internal errors are logged here,
// once, and reach the client only as a server_error.
func (s *Server) writeOpenAIError(w http.ResponseWriter, r *http.Request, err error) {
	f, ok := errors.AsType[*openAIStatusError](err)
	if !ok {
		f = s.openAIStatusErrorOf(r, err)
	}
	// The rejection's reason comes from the domain error where there is one,
	// else from the status (a parameter OpenAI's way refuses is a 400).
	if ok {
		noteError(r, f.cause)
	} else {
		noteError(r, err)
	}
	setRetryAfter(w, err)
	if f.noRetry {
		w.Header().Set("x-should-retry", "false")
	}
	body := OpenAIErrorBody{Error: OpenAIError{Message: f.message, Type: f.typ}}
	if f.param != "" {
		body.Error.Param = &f.param
	}
	if f.code != "" {
		body.Error.Code = &f.code
	}
	s.writeJSON(w, r, f.status, body)
}

// openAIStatusErrorOf translates an error that is not already in OpenAI's terms.
func (s *Server) openAIStatusErrorOf(r *http.Request, err error) *openAIStatusError {
	status := httpStatus(err)
	if status == http.StatusInternalServerError {
		s.logFailure(r, err)
		return &openAIStatusError{status: status, typ: openAIServerError, message: "The server had an error while processing your request."}
	}
	if diffute.ErrorCode(err) == diffute.ERATELIMIT {
		f := &openAIStatusError{status: status, typ: openAIRateLimit, code: "rate_limit_exceeded", message: diffute.ErrorMessage(err)}
		if qe, ok := errors.AsType[*diffute.QuotaError](err); ok {
			f.typ, f.code = openAIQuota, "insufficient_quota"
			// The SDKs wait at most a minute for Retry-After; a quota that
			// renews at midnight is not worth their retries.
			f.noRetry = qe.RetryAfter > time.Minute
		}
		return f
	}
	return openAIParamError(err)
}

// OpenAIModelList is the body of GET /v1/models, OpenAI's model list: the
// models this deployment serves.
type OpenAIModelList struct {
	Object string        `json:"object"` // "list"
	Data   []OpenAIModel `json:"data"`
}

// OpenAIModel is one served model as OpenAI lists it. Created is 0: Diffute
// does not know when a checkpoint was made.
type OpenAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// openAIModels handles GET /v1/models (tools that speak OpenAI's API list the
// models before they generate). Like POST /v1/images/generations it takes the
// key as Authorization: Bearer and answers its errors in OpenAI's shape.
func (s *Server) openAIModels(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := s.openAIKey(r); err != nil {
		s.writeOpenAIError(w, r, err)
		return nil
	}
	out := OpenAIModelList{Object: "list", Data: []OpenAIModel{}}
	for _, name := range s.Models {
		out.Data = append(out.Data, OpenAIModel{ID: name, Object: "model", OwnedBy: "diffute"})
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}
