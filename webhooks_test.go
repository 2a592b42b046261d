package diffute_test

import (
	"errors"
	"testing"

	"github.com/diffute/diffute"
)

func TestWebhookEventsValidated(t *testing.T) {
	t.Parallel()
	for _, ok := range [][]string{nil, {"completed"}, {"started", "prompt.completed", "completed"}, {"started"}} {
		r := validRequest()
		r.WebhookEvents = ok
		if err := r.Validate(diffute.DefaultLimits, nil); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for events, field := range map[string]string{"finished": "webhook_events[0]", "completed,completed": "webhook_events[1]", "started,": "webhook_events[1]"} {
		r := validRequest()
		r.WebhookEvents = diffute.SplitEvents(events)
		err := r.Validate(diffute.DefaultLimits, nil)
		if e, ok := errors.AsType[*diffute.Error](err); !ok || e.Field != field {
			t.Errorf("%q: %v, want an error naming %s", events, err, field)
		}
	}
}

func TestWantsEvent(t *testing.T) {
	t.Parallel()
	j := &diffute.Job{Webhook: "https://x/y"}
	if !j.WantsEvent(diffute.EventCompleted) || j.WantsEvent(diffute.EventStarted) {
		t.Error("default events are not just completed")
	}
	j.WebhookEvents = []string{diffute.EventStarted}
	if j.WantsEvent(diffute.EventCompleted) || !j.WantsEvent(diffute.EventStarted) {
		t.Error("explicit events not honoured")
	}
	if (&diffute.Job{}).WantsEvent(diffute.EventCompleted) {
		t.Error("a job without a webhook wants events")
	}
	if got := diffute.SplitEvents(diffute.JoinEvents(nil)); len(got) != 1 || got[0] != "completed" {
		t.Errorf("JoinEvents(nil) round trip = %v", got)
	}
}
