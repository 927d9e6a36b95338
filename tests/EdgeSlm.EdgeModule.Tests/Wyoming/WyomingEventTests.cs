using System.Text.Json;
using EdgeSlm.EdgeModule.Wyoming;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary>An event's data is JSON kept as it came; answers are built property by property.</summary>
public sealed class WyomingEventTests
{
    [Fact]
    public void Create_keeps_each_property_as_json()
    {
        WyomingEvent e = WyomingEvent.Create("intent", w =>
        {
            w.WriteString("name", "HassTurnOn");
            w.WriteNumber("n", 3);
            w.WriteStartArray("entities");
            w.WriteEndArray();
        });
        Assert.Equal("intent", e.Type);
        Assert.Equal(["name", "n", "entities"], e.Data.Keys);
        Assert.Equal(JsonValueKind.Number, e.Data["n"].ValueKind);
        Assert.Equal(JsonValueKind.Array, e.Data["entities"].ValueKind);
        Assert.Null(e.Payload);
    }

    [Fact]
    public void String_is_null_for_a_missing_null_or_non_string_value()
    {
        WyomingEvent e = WyomingEvent.Create("transcript", w =>
        {
            w.WriteString("text", "hi");
            w.WriteNull("language");
            w.WriteNumber("n", 1);
        });
        Assert.Equal("hi", e.String("text"));
        Assert.Null(e.String("language"));
        Assert.Null(e.String("n"));
        Assert.Null(e.String("context"));
        Assert.Empty(WyomingEvent.Empty("describe").Data);
    }
}
