using System.Text.Json;
using System.Text;
using EdgeSlm.EdgeModule.Wyoming;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary>Events are written as the reference writes them, and read back as they were.</summary>
public sealed class WyomingEventWriterTests
{
    private static readonly WyomingLimits Limits = new(8192, 65536, 65536);

    private static async Task<WyomingEvent> RoundTrip(WyomingEvent e)
    {
        var reader = new WyomingEventReader(new MemoryStream(WyomingEventWriter.ToBytes(e)), Limits);
        WyomingEvent read = (await reader.ReadAsync())!;
        Assert.Null(await reader.ReadAsync());
        return read;
    }

    [Fact]
    public void The_header_carries_type_version_and_lengths_and_the_data_follows_it()
    {
        WyomingEvent e = WyomingEvent.Create("intent", w => w.WriteString("name", "HassTurnOn")) with { Payload = [1, 2, 3] };
        byte[] bytes = WyomingEventWriter.ToBytes(e);
        int newline = Array.IndexOf(bytes, (byte)'\n');
        using JsonDocument header = JsonDocument.Parse(bytes.AsMemory(0, newline));
        Assert.Equal("intent", header.RootElement.GetProperty("type").GetString());
        Assert.Equal(WyomingEventWriter.ProtocolVersion, header.RootElement.GetProperty("version").GetString());
        int dataLength = header.RootElement.GetProperty("data_length").GetInt32();
        Assert.Equal(3, header.RootElement.GetProperty("payload_length").GetInt32());
        Assert.False(header.RootElement.TryGetProperty("data", out _));
        Assert.Equal("""{"name":"HassTurnOn"}""", Encoding.UTF8.GetString(bytes, newline + 1, dataLength));
        Assert.Equal(new byte[] { 1, 2, 3 }, bytes[(newline + 1 + dataLength)..]);
    }

    [Fact]
    public void An_event_without_data_or_payload_is_one_header_line()
    {
        byte[] bytes = WyomingEventWriter.ToBytes(WyomingEvent.Empty("describe"));
        Assert.Equal($$"""{"type":"describe","version":"{{WyomingEventWriter.ProtocolVersion}}"}""" + "\n", Encoding.UTF8.GetString(bytes));
    }

    [Fact]
    public async Task Text_with_newlines_quotes_and_accents_round_trips_and_the_header_stays_one_line()
    {
        const string text = "line one\nline \"two\" – café ☕ \u0000 end";
        WyomingEvent e = WyomingEvent.Create("transcript", w =>
        {
            w.WriteString("text", text);
            w.WriteStartObject("context");
            w.WriteString("conversation_id", "01J");
            w.WriteNumber("n", 2.5);
            w.WriteEndObject();
        });
        byte[] bytes = WyomingEventWriter.ToBytes(e);
        Assert.Equal(1, bytes.Count(b => b == (byte)'\n')); // only the header's own newline: the data escapes its newline
        WyomingEvent read = await RoundTrip(e);
        Assert.Equal("transcript", read.Type);
        Assert.Equal(text, read.String("text"));
        Assert.Equal(2.5, read.Data["context"].GetProperty("n").GetDouble());
        Assert.Equal("01J", read.Data["context"].GetProperty("conversation_id").GetString());
    }

    [Fact]
    public async Task Payload_round_trips_byte_for_byte()
    {
        byte[] payload = Enumerable.Range(0, 4096).Select(i => (byte)(i * 31 + 7)).ToArray();
        WyomingEvent read = await RoundTrip(WyomingEvent.Empty("audio-chunk") with { Payload = payload });
        Assert.Equal(payload, read.Payload);
        Assert.Empty(read.Data);
    }
}
