package report

import (
	"os"
	"path/filepath"

	"konductor.dev/chaos/journal"
)

// Files are the report files Generate writes.
type Files struct{ Markdown, HTML string }

// Generate reads the journal at journalPath and writes report.md and
// report.html beside it (or into dir when not empty).
func Generate(journalPath, dir string) (Files, []*Summary, error) {
	recs, err := journal.ReadFile(journalPath)
	if err != nil {
		return Files{}, nil, err
	}
	if dir == "" {
		dir = filepath.Dir(journalPath)
	}
	sums := Summarize(recs)
	files := Files{Markdown: filepath.Join(dir, "report.md"), HTML: filepath.Join(dir, "report.html")}
	for path, render := range map[string]func(*os.File) error{
		files.Markdown: func(f *os.File) error { return Markdown(f, sums) },
		files.HTML:     func(f *os.File) error { return HTML(f, sums) },
	} {
		f, err := os.Create(path)
		if err != nil {
			return files, sums, err
		}
		err = render(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return files, sums, err
		}
	}
	return files, sums, nil
}
