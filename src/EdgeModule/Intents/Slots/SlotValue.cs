namespace EdgeSlm.EdgeModule.Intents.Slots;

public enum SlotKind { Custom, Number, Percentage, Duration, Time, Wildcard }

/// <summary>A slot found in an input: its normalised value, the text it came from and where (UTF-16, end exclusive).</summary>
public sealed record SlotValue(string Slot, string Value, string Raw, int Start, int End, SlotKind Kind = SlotKind.Custom, double? Number = null);
