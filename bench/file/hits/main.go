// Command hits prints the files a file module result found, one per line,
// sorted, from the JSON result on standard input ("mig-agent -m file"
// output); with -stats it prints the result's statistics and errors
// instead.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
)

func main() {
	stats := flag.Bool("stats", false, "print the statistics and errors")
	flag.Parse()
	var res struct {
		Success    bool                               `json:"success"`
		Elements   map[string][]struct{ File string } `json:"elements"`
		Statistics json.RawMessage                    `json:"statistics"`
		Errors     []string                           `json:"errors"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&res); err != nil {
		fmt.Fprintln(os.Stderr, "hits:", err)
		os.Exit(1)
	}
	if *stats {
		fmt.Printf("success=%v statistics=%s\n", res.Success, res.Statistics)
		for _, e := range res.Errors {
			fmt.Println("error:", e)
		}
		return
	}
	var files []string
	for _, ms := range res.Elements {
		for _, m := range ms {
			files = append(files, m.File)
		}
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Println(f)
	}
}
