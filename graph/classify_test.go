package graph

import "testing"

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		want   Class
	}{
		{201, Created},
		{400, Rejected},
		{404, Rejected},
		{409, Rejected},
		{415, Rejected},
		{418, Rejected},
		{422, Rejected},
		{401, Systemic},
		{403, Systemic},
		{405, Systemic},
		{408, Transient},
		{424, Transient},
		{429, Transient},
		{500, Transient},
		{502, Transient},
		{503, Transient},
		{504, Transient},
		{509, Transient},
		{599, Transient},
		// Not Graph's answers to a create: the base URL leads elsewhere.
		{200, Systemic},
		{204, Systemic},
		{302, Systemic},
		{307, Systemic},
		{600, Systemic},
	}
	for _, tt := range tests {
		if got := Classify(tt.status); got != tt.want {
			t.Errorf("Classify(%d) = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{
		Created: "created", Rejected: "rejected", Transient: "transient", Systemic: "systemic", Listed: "listed", 0: "Class(0)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	statuses := []int{201, 400, 401, 404, 429, 503}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Classify(statuses[i%len(statuses)])
	}
}
