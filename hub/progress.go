package hub

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// NewProgressBar returns a Client.Progress function that draws one line per
// file on w, redrawn in place with a carriage return and ended with a newline
// when the file is complete. It is meant for terminals; the caller decides
// whether w is one. It redraws only when the shown percentage changes, so a
// large file costs at most about a hundred writes. It is safe for concurrent use.
func NewProgressBar(w io.Writer) func(file string, done, total int64) {
	var (
		mu       sync.Mutex
		current  string
		lastDraw = int64(-1)
	)
	const width = 30
	return func(file string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if file != current {
			if current != "" {
				// The previous file did not finish (an error); keep its line.
				fmt.Fprintln(w)
			}
			current, lastDraw = file, -1
		}
		// Percent when the total is known, else one step per MiB.
		step := done >> 20
		if total > 0 {
			step = done * 100 / total
		}
		finished := total >= 0 && done >= total
		if step == lastDraw && !finished {
			return
		}
		lastDraw = step
		var bar string
		if total > 0 {
			filled := int(done * width / total)
			if filled > width {
				filled = width
			}
			bar = fmt.Sprintf("[%s%s] %3d%% ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), step)
		}
		sizes := byteSize(done)
		if total >= 0 {
			sizes += " / " + byteSize(total)
		}
		fmt.Fprintf(w, "\r%s %s%s\x1b[K", file, bar, sizes)
		if finished {
			fmt.Fprintln(w)
			current = ""
		}
	}
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
