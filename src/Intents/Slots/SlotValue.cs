using System.Globalization;

namespace EdgeSlm.Intents.Slots;

/// <summary>What a slot value is; the Hermes protocol maps these to its value kinds (Custom, Number, Percentage, Duration, InstantTime).</summary>
public enum SlotKind { Custom, Number, Percentage, Duration, Time, Wildcard }

/// <summary>
/// A slot found in an utterance. <see cref="Start"/> and <see cref="End"/> are UTF-16 indices into the input (end
/// exclusive) and <see cref="Raw"/> is that range of it. <see cref="Value"/> is normalised: a list's value for
/// <see cref="SlotKind.Custom"/>, "21" or "20.5" for numbers and percentages, ISO 8601 ("PT1H30M") for durations,
/// "18:30" for times of day. <see cref="Number"/> holds the number, the percentage, a duration's total seconds or a
/// time's seconds since midnight. A slot fixed by a template (not spoken) has an empty range at 0.
/// </summary>
public sealed record SlotValue(string Slot, string Value, string Raw, int Start, int End, SlotKind Kind = SlotKind.Custom, double? Number = null)
{
    internal static string FormatNumber(double value) => value.ToString(CultureInfo.InvariantCulture);

    internal static SlotValue Spoken(string input, string slot, string value, int start, int end, SlotKind kind = SlotKind.Custom, double? number = null) =>
        new(slot, value, input[start..end], start, end, kind, number);
}
