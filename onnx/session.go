package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// modelInfo is what a component's .onnx file declares.
type modelInfo struct {
	rel     string // path relative to the model folder, for error messages
	path    string
	inputs  []ort.InputOutputInfo
	outputs []ort.InputOutputInfo
	built   *builtComponent // a graph built from a config, nil for an .onnx file
}

func (m *modelInfo) input(name string) (ort.InputOutputInfo, bool) {
	for _, in := range m.inputs {
		if in.Name == name {
			return in, true
		}
	}
	return ort.InputOutputInfo{}, false
}

func (m *modelInfo) output(name string) (ort.InputOutputInfo, bool) {
	for _, out := range m.outputs {
		if out.Name == name {
			return out, true
		}
	}
	return ort.InputOutputInfo{}, false
}

// readModelInfo reads the inputs and outputs of dir/component/model.onnx. A missing
// or unreadable file gives an error naming it; ONNX Runtime reports a corrupt one as
// an error too (never a panic).
func readModelInfo(dir, component string) (*modelInfo, error) {
	rel := component + "/model.onnx"
	path := filepath.Join(dir, component, "model.onnx")
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: model folder %s: missing %s", dir, rel)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, fmt.Errorf("onnx: model folder %s: %s is empty or not a file", dir, rel)
	}
	// The info comes from a throwaway CPU session; skipping graph optimisation
	// makes that extra load cheaper for multi-gigabyte UNets.
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	defer so.Destroy()
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	ins, outs, err := ort.GetInputOutputInfoWithOptions(path, so)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: cannot load %s (corrupt or not an ONNX model?): %w", dir, rel, err)
	}
	return &modelInfo{rel: rel, path: path, inputs: ins, outputs: outs}, nil
}

// newSession opens the component's session with the given input and output names,
// in the order Run will pass values.
func (m *modelInfo) newSession(inputs, outputs []string, sc sessionConfig) (*ort.DynamicAdvancedSession, error) {
	so, err := sc.newSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if m.built != nil {
		// The weights are borrowed in place. Prepacking and the layout
		// optimisations (NCHWc, ORT's "all" level) would copy every one, and
		// the layout pass reads them before the session has them.
		if err := so.AddSessionConfigEntry("session.disable_prepacking", "1"); err != nil {
			return nil, fmt.Errorf("onnx: session options: %w", err)
		}
		if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableExtended); err != nil {
			return nil, fmt.Errorf("onnx: session options: %w", err)
		}
		if err := m.built.supplied.apply(so); err != nil {
			return nil, fmt.Errorf("onnx: %s: %w", m.rel, err)
		}
		s, err := ort.NewDynamicAdvancedSessionWithONNXData(m.built.graph.Model, inputs, outputs, so)
		if err != nil {
			return nil, fmt.Errorf("onnx: open %s (built graph): %w", m.rel, err)
		}
		return s, nil
	}
	s, err := ort.NewDynamicAdvancedSession(m.path, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("onnx: open %s: %w", m.rel, err)
	}
	return s, nil
}

// missingKernel reports whether err is ONNX Runtime's refusal of a node no
// provider of the session has a kernel for.
func missingKernel(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "could not find an implementation") || strings.Contains(msg, "failed to find kernel")
}

// checkOnlyInputs fails when the model has inputs the pipeline does not feed: they
// would be missing at Run, and naming them now is clearer.
func (m *modelInfo) checkOnlyInputs(known ...string) error {
	for _, in := range m.inputs {
		found := false
		for _, k := range known {
			if in.Name == k {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("onnx: %s has input %q, which this pipeline does not provide (supported: %v)", m.rel, in.Name, known)
		}
	}
	return nil
}

func (m *modelInfo) requireInput(name string) (ort.InputOutputInfo, error) {
	in, ok := m.input(name)
	if !ok {
		return in, fmt.Errorf("onnx: %s has no input %q", m.rel, name)
	}
	if in.OrtValueType != ort.ONNXTypeTensor {
		return in, fmt.Errorf("onnx: %s input %q is not a tensor", m.rel, name)
	}
	return in, nil
}

func (m *modelInfo) requireOutput(name string) (ort.InputOutputInfo, error) {
	out, ok := m.output(name)
	if !ok {
		return out, fmt.Errorf("onnx: %s has no output %q", m.rel, name)
	}
	if out.OrtValueType != ort.ONNXTypeTensor || !isFloatType(out.DataType) {
		return out, fmt.Errorf("onnx: %s output %q is not a float or float16 tensor", m.rel, name)
	}
	return out, nil
}

func requireFloatInput(m *modelInfo, name string, rank int) (ort.InputOutputInfo, error) {
	in, err := m.requireInput(name)
	if err != nil {
		return in, err
	}
	if !isFloatType(in.DataType) {
		return in, fmt.Errorf("onnx: %s input %q has element type %v, want float or float16", m.rel, name, in.DataType)
	}
	if len(in.Dimensions) != rank {
		return in, fmt.Errorf("onnx: %s input %q has rank %d, want %d", m.rel, name, len(in.Dimensions), rank)
	}
	return in, nil
}

// dim returns dimension i of a declared shape, or 0 when it is symbolic.
func dim(s ort.Shape, i int) int {
	if i < len(s) && s[i] > 0 {
		return int(s[i])
	}
	return 0
}
