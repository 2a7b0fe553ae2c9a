package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
)

// helpWidth is where help wraps its prose.
const helpWidth = 78

// printHelp prints the help the words after keel help name: keel's, a
// group's or a command's.
func (c *cli) printHelp(words []string) error {
	if len(words) == 0 {
		return writeMainHelp(c.out)
	}
	g := findGroup(words[0])
	if g == nil {
		return usageError{fmt.Sprintf("help: unknown command %q", words[0])}
	}
	if len(words) == 1 && g.alone() == nil {
		return writeGroupHelp(c.out, g)
	}
	c.cmd = g.name
	cmd, rest, err := pickCommand(g, words[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("help: unexpected %q", rest[0])}
	}
	return writeCommandHelp(c.out, cmd)
}

func writeMainHelp(w io.Writer) error {
	fmt.Fprint(w, "keel applies keel's migrations and inspects and repairs a keel database.\n\n"+
		"Usage: keel [flags] COMMAND [SUBCOMMAND] [ARGS] [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, g := range commandGroups() {
		fmt.Fprintf(tw, "  %s\t%s\n", g.name, g.summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprint(w, "\nFlags, before the command or after it:\n")
	global := newFlagSet("keel")
	(&cli{}).globalFlags(global, true, true)
	if err := writeFlags(w, global); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "\nRun 'keel COMMAND --help' for a command's subcommands,\n"+
		"and 'keel COMMAND SUBCOMMAND --help' for one's arguments and flags.\n")
	return err
}

func writeGroupHelp(w io.Writer, g *group) error {
	fmt.Fprintf(w, "Usage: keel %s SUBCOMMAND [ARGS] [flags]\n\n%s\n\nSubcommands:\n", g.name, sentence(g.summary))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, cmd := range g.commands {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimPrefix(cmd.synopsis(), "keel "+g.name+" "), cmd.summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nRun 'keel %s SUBCOMMAND --help' for a subcommand's arguments and flags.\n", g.name)
	return err
}

// writeCommandHelp describes one command: how to type it, what it does,
// and each of its flags with its default.
func writeCommandHelp(w io.Writer, cmd *command) error {
	own, global := newFlagSet(cmd.name), newFlagSet(cmd.name)
	cmd.setup(own)
	(&cli{}).globalFlags(global, cmd.db, cmd.json)
	usage := cmd.synopsis()
	if hasFlags(own) || hasFlags(global) {
		usage += " [flags]"
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", usage, wrap(sentence(cmd.summary)+" "+cmd.about, helpWidth))
	for _, a := range cmd.args {
		fmt.Fprintf(w, "\n%s is %s.", a.name, a.what)
	}
	if len(cmd.args) > 0 {
		fmt.Fprintln(w)
	}
	if !hasFlags(own) && !hasFlags(global) {
		return nil
	}
	fmt.Fprint(w, "\nFlags:\n")
	return writeFlags(w, own, global)
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// writeFlags writes one line per flag of each set, in one table: its name,
// the value it takes, what it does and its default.
func writeFlags(w io.Writer, sets ...*flag.FlagSet) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + strings.ToUpper(name)
			}
			if !strings.Contains(usage, "(default") {
				usage += fmt.Sprintf(" (default: %s)", f.DefValue)
			}
			fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, name, usage)
		})
	}
	return tw.Flush()
}

// sentence makes a summary line a sentence.
func sentence(s string) string {
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r) + "."
}

// wrap breaks text into lines of at most width bytes, between words.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		switch {
		case n == 0:
		case n+1+len(word) > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
