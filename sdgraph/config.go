package sdgraph

import (
	"encoding/json"
	"fmt"
)

// perBlock is a config value that is one number for every block or a list with
// one per block (attention_head_dim, transformer_layers_per_block, …).
type perBlock struct {
	set  bool
	one  int64
	list []int64
}

func (p *perBlock) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	p.set = true
	if err := json.Unmarshal(b, &p.one); err == nil {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("want a number or a list of numbers")
	}
	for _, e := range list {
		var v int64
		if err := json.Unmarshal(e, &v); err != nil {
			// SDXL refiners and some fine-tunes nest lists; not supported.
			return fmt.Errorf("want a number or a list of numbers, got %s", string(b))
		}
		p.list = append(p.list, v)
	}
	return nil
}

// expand gives one value per block.
func (p perBlock) expand(key string, n int) ([]int64, error) {
	if p.list == nil {
		out := make([]int64, n)
		for i := range out {
			out[i] = p.one
		}
		return out, nil
	}
	if len(p.list) != n {
		return nil, fmt.Errorf("%s has %d values for %d blocks", key, len(p.list), n)
	}
	return p.list, nil
}
