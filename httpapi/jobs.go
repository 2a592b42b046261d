package httpapi

import (
	"net/http"
	"strconv"

	"github.com/diffute/diffute"
)

// Bounds of the list's limit parameter.
const (
	defaultListLimit = 20
	maxListLimit     = 100
)

// JobSummary is one job of the list: its state and progress, without URLs (the
// job's own status has those).
type JobSummary struct {
	JobID      int64             `json:"job_id"`
	Name       string            `json:"name"`
	Model      string            `json:"model"`
	Status     diffute.JobStatus `json:"status"`
	Progress   float64           `json:"progress"`
	Prompts    int               `json:"prompts"`
	Images     int               `json:"images"`
	CreatedAt  string            `json:"created_at"`
	FinishedAt *string           `json:"finished_at"`
	Error      string            `json:"error,omitempty"`
}

// JobList is the body of GET /{org}/{project}/media/inference.
type JobList struct {
	Jobs []JobSummary `json:"jobs"`
	// NextBefore is the cursor of the next page (pass it as before); absent on the
	// last page.
	NextBefore *int64 `json:"next_before,omitempty"`
}

// listInference handles GET /{org}/{project}/media/inference?limit=N&before=JOB_ID.
func (s *Server) listInference(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return diffute.FieldErrorf(diffute.EINVALID, "limit", "limit must be an integer from 1 to %d", maxListLimit)
		}
		limit = n
	}
	var before int64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > diffute.MaxSeed {
			return diffute.FieldErrorf(diffute.EINVALID, "before", "before must be a job_id from the previous page")
		}
		before = n
	}
	jobs, next, err := s.Store.ListJobs(r.Context(), r.PathValue("org"), r.PathValue("project"), limit, before)
	if err != nil {
		return err
	}
	out := JobList{Jobs: make([]JobSummary, 0, len(jobs))}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, summarize(j))
	}
	if next != 0 {
		out.NextBefore = &next
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

func summarize(j *diffute.Job) JobSummary {
	v := JobSummary{
		JobID: j.ID, Name: j.Name, Model: j.Model, Status: j.Status, Prompts: len(j.Prompts),
		CreatedAt: j.CreatedAt.UTC().Format(timeFormat), Error: j.Error,
	}
	if !j.FinishedAt.IsZero() {
		f := j.FinishedAt.UTC().Format(timeFormat)
		v.FinishedAt = &f
	}
	total, sum := 0, 0.0
	for _, p := range j.Prompts {
		total += p.NumImages
		v.Images += p.ImagesDone
		sum += promptProgress(p) * float64(p.NumImages)
	}
	if total > 0 {
		v.Progress = sum / float64(total)
	}
	if j.Status == diffute.StatusSucceeded {
		v.Progress = 1
	}
	return v
}

// timeFormat is how times appear in JSON: RFC 3339 with the fraction encoding/json
// would write for a time.Time.
const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"
