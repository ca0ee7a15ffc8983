package tui

import (
	"reflect"
	"slices"
	"testing"

	"charm.land/bubbles/v2/key"
)

// Every binding the handlers match that carries help text is on the help
// screen or in the header, and every help line names keys that are bound.
func TestHelpShowsTheKeyMap(t *testing.T) {
	var shown []string
	for _, col := range keys.FullHelp() {
		for _, b := range col {
			if len(b.Keys()) == 0 || b.Help().Key == "" || b.Help().Desc == "" {
				t.Errorf("help line %+v: no keys or no text", b.Help())
			}
			shown = append(shown, b.Help().Desc)
		}
	}
	for _, b := range keys.ShortHelp() {
		shown = append(shown, b.Help().Desc)
	}
	v := reflect.ValueOf(keys)
	for i := range v.NumField() {
		b := v.Field(i).Interface().(key.Binding)
		if len(b.Keys()) == 0 {
			t.Errorf("keys.%s binds no key", v.Type().Field(i).Name)
		}
		if d := b.Help().Desc; d != "" && !slices.Contains(shown, d) {
			t.Errorf("keys.%s (%q) is not on the help screen", v.Type().Field(i).Name, d)
		}
	}
}
