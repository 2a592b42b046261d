package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/diffute/diffute"
)

// maxUsageDays bounds one usage query.
const maxUsageDays = 366

// UsageFigures is metered work as the API shows it.
type UsageFigures struct {
	Images        int64   `json:"images"`
	PixelSteps    int64   `json:"pixel_steps"` // width × height × denoising steps, summed over images
	EngineSeconds float64 `json:"engine_seconds"`
}

func usageFigures(u diffute.Usage) UsageFigures {
	return UsageFigures{Images: u.Images, PixelSteps: u.PixelSteps, EngineSeconds: u.EngineTime.Seconds()}
}

// UsageDayView is one day of a UsageResponse.
type UsageDayView struct {
	Date string `json:"date"`
	UsageFigures
}

// UsageResponse is the body of GET /{org}/{project}/usage.
type UsageResponse struct {
	Organization string         `json:"organization"`
	Project      string         `json:"project"`
	From         string         `json:"from"`
	To           string         `json:"to"`
	Days         []UsageDayView `json:"days"`
	Total        UsageFigures   `json:"total"`
}

// getUsage handles GET /{org}/{project}/usage?from=YYYY-MM-DD&to=YYYY-MM-DD (UTC
// days, inclusive; default the last 30 days).
func (s *Server) getUsage(w http.ResponseWriter, r *http.Request) error {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	to, err := usageDate(r, "to", today)
	if err != nil {
		return err
	}
	from, err := usageDate(r, "from", to.AddDate(0, 0, -29))
	if err != nil {
		return err
	}
	if from.After(to) {
		return diffute.FieldErrorf(diffute.EUNPROCESSABLE, "from", "from must not be after to")
	}
	if to.Sub(from) >= maxUsageDays*24*time.Hour {
		return diffute.FieldErrorf(diffute.EUNPROCESSABLE, "from", "ask for at most %d days at once", maxUsageDays)
	}
	org, project := r.PathValue("org"), r.PathValue("project")
	days, err := s.Tenancy.Usage(r.Context(), org, project, from, to)
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	resp := UsageResponse{Organization: org, Project: project,
		From: from.Format(diffute.UsageDayFormat), To: to.Format(diffute.UsageDayFormat), Days: []UsageDayView{}}
	var total diffute.Usage
	for _, d := range days {
		resp.Days = append(resp.Days, UsageDayView{Date: d.Day, UsageFigures: usageFigures(d.Usage)})
		total.Add(d.Usage)
	}
	resp.Total = usageFigures(total)
	s.writeJSON(w, r, http.StatusOK, resp)
	return nil
}

func usageDate(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(diffute.UsageDayFormat, v)
	if err != nil {
		return time.Time{}, diffute.FieldErrorf(diffute.EUNPROCESSABLE, name, "%s must be a UTC date like 2026-01-31", name)
	}
	return t, nil
}

func (s *Server) mediaRetention() time.Duration {
	if s.MediaRetention <= 0 {
		return diffute.DefaultMediaRetention
	}
	return s.MediaRetention
}

// mediaExpiry is when retention deletes job's images: retention after it ended;
// nil while it runs.
func mediaExpiry(job *diffute.Job, retention time.Duration) *time.Time {
	if job.FinishedAt.IsZero() {
		return nil
	}
	return optionalTime(job.FinishedAt.Add(retention))
}
