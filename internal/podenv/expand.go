package podenv

import (
	"strings"
	"unicode/utf8"
)

// Expand replaces $(VAR) references in input as Kubernetes does for env values, command and
// args (k8s.io/kubernetes third_party/forked/golang/expansion, ported: importing
// k8s.io/kubernetes is not supported): $$ is an escaped $, references mapping does not know
// stay verbatim, and anything else (${VAR}, $VAR, unterminated $( ) is left as written.
func Expand(input string, mapping func(string) string) string {
	var buf strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] == '$' && cursor+1 < len(input) {
			buf.WriteString(input[checkpoint:cursor])
			read, isVar, advance := tryReadVariableName(input[cursor+1:])
			if isVar {
				buf.WriteString(mapping(read))
			} else {
				buf.WriteString(read)
			}
			cursor += advance
			checkpoint = cursor + 1
		}
	}
	return buf.String() + input[checkpoint:]
}

// MappingFuncFor looks a name up in each context in turn; an unknown name maps to its
// reference as written, so it stays verbatim.
func MappingFuncFor(context ...map[string]string) func(string) string {
	return func(name string) string {
		for _, vars := range context {
			if v, ok := vars[name]; ok {
				return v
			}
		}
		return "$(" + name + ")"
	}
}

// tryReadVariableName reads what follows a '$': the name of a $(NAME) reference (isVar), or
// the text to copy as is; advance is how many bytes of input it used.
func tryReadVariableName(input string) (string, bool, int) {
	r, size := utf8.DecodeRuneInString(input)
	switch r {
	case '$':
		return input[0:size], false, size // escaped operator
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1 // incomplete reference
	default:
		return "$" + string(r), false, size
	}
}
