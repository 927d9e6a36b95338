using System.Text.Json;
using System.Text;
using EdgeSlm.EdgeModule.Wyoming;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary>The event reader frames events as OHF-Voice/wyoming does and refuses what breaks a limit before reading it.</summary>
public sealed class WyomingEventReaderTests
{
    private static readonly WyomingLimits Limits = new(MaxHeaderBytes: 256, MaxDataBytes: 1024, MaxPayloadBytes: 1024);

    private static async Task<List<WyomingEvent>> ReadAll(byte[] bytes, WyomingLimits? limits = null, int chunk = int.MaxValue)
    {
        var reader = new WyomingEventReader(new ChunkedStream(bytes, chunk), limits ?? Limits);
        var events = new List<WyomingEvent>();
        while (await reader.ReadAsync(TestContext.Current.CancellationToken) is WyomingEvent e)
        {
            events.Add(e);
        }
        return events;
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public async Task Data_after_the_header_is_merged_over_the_header_data()
    {
        string data = """{"text":"turn on the light","language":"en"}""";
        byte[] bytes = Bytes("""{"type":"transcript","data":{"text":"old","context":{"a":1}},"data_length":""" + Encoding.UTF8.GetByteCount(data) + ""","version":"1.6.2"}""" + "\n" + data);
        WyomingEvent e = Assert.Single(await ReadAll(bytes));
        Assert.Equal("transcript", e.Type);
        Assert.Equal("turn on the light", e.String("text"));
        Assert.Equal("en", e.String("language"));
        Assert.Equal(1, e.Data["context"].GetProperty("a").GetInt32());
        Assert.Null(e.Payload);
    }

    [Fact]
    public async Task Data_inside_the_header_alone_is_read_and_unknown_keys_are_ignored()
    {
        byte[] bytes = Bytes("""{"type":"recognize","data":{"text":"hi"},"future_key":[1,2],"version":"9.9"}""" + "\n");
        WyomingEvent e = Assert.Single(await ReadAll(bytes));
        Assert.Equal("recognize", e.Type);
        Assert.Equal("hi", e.String("text"));
    }

    [Fact]
    public async Task Events_follow_each_other_with_payloads_read_byte_for_byte_in_any_chunking()
    {
        byte[] payload = Enumerable.Range(0, 300).Select(i => (byte)(i * 7)).ToArray();
        byte[] bytes = [.. Bytes("""{"type":"describe"}""" + "\r\n"), .. Bytes("""{"type":"audio-chunk","payload_length":300}""" + "\n"), .. payload,
            .. Bytes("""{"type":"transcript","data_length":13}""" + "\n" + """{"text":"ok"}""")];
        foreach (int chunk in new[] { 1, 2, 7, 64, int.MaxValue })
        {
            List<WyomingEvent> events = await ReadAll(bytes, chunk: chunk);
            Assert.Equal(["describe", "audio-chunk", "transcript"], events.Select(e => e.Type));
            Assert.Equal(payload, events[1].Payload);
            Assert.Equal("ok", events[2].String("text"));
        }
    }

    [Fact]
    public async Task A_clean_end_between_events_is_null_and_an_end_inside_one_is_an_end_of_stream()
    {
        Assert.Empty(await ReadAll([]));
        await Assert.ThrowsAsync<EndOfStreamException>(() => ReadAll(Bytes("""{"type":"describe"}""")));
        await Assert.ThrowsAsync<EndOfStreamException>(() => ReadAll(Bytes("""{"type":"transcript","data_length":50}""" + "\n{\"te")));
        await Assert.ThrowsAsync<EndOfStreamException>(() => ReadAll(Bytes("""{"type":"x","payload_length":50}""" + "\nabc")));
    }

    [Theory]
    [InlineData("not json", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("[1,2]", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("{}", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":""}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":5}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":"x","data":[1]}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":"x","data_length":-1}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":"x","data_length":1.5}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":"x","data_length":"5"}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":"x","data_length":1025}""", WyomingEventReader.CodeDataTooLong)]
    [InlineData("""{"type":"x","data_length":99999999999999999999}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":"x","payload_length":1025}""", WyomingEventReader.CodePayloadTooLong)]
    [InlineData("""{"type":"\ud800"}""", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("""{"type":"x","data":{"\udc00":1}}""", WyomingEventReader.CodeHeaderInvalid)]
    public async Task A_bad_header_is_refused_with_its_code(string header, string code)
    {
        var e = await Assert.ThrowsAsync<WyomingProtocolException>(() => ReadAll(Bytes(header + "\n")));
        Assert.Equal(code, e.Code);
    }

    [Theory]
    [InlineData("[1]")]
    [InlineData("{\"a\":")]
    [InlineData("\"text\"")]
    public async Task Data_that_is_not_a_json_object_is_refused(string data)
    {
        byte[] bytes = Bytes($$"""{"type":"x","data_length":{{data.Length}}}""" + "\n" + data);
        var e = await Assert.ThrowsAsync<WyomingProtocolException>(() => ReadAll(bytes));
        Assert.Equal(WyomingEventReader.CodeDataInvalid, e.Code);
    }

    [Fact]
    public async Task A_header_line_at_the_limit_is_read_and_one_byte_more_is_refused_without_waiting_for_its_end()
    {
        string Header(int length)
        {
            string start = """{"type":"describe","pad":" """;
            return start + new string('x', length - start.Length - 2) + "\"}";
        }
        Assert.Equal(256, Header(256).Length);
        Assert.Single(await ReadAll(Bytes(Header(256) + "\n")));
        Assert.Single(await ReadAll(Bytes(Header(256) + "\r\n")));
        var e = await Assert.ThrowsAsync<WyomingProtocolException>(() => ReadAll(Bytes(Header(257) + "\n")));
        Assert.Equal(WyomingEventReader.CodeHeaderTooLong, e.Code);
        // No newline ever: refused once the limit is passed, not read to the end of the stream.
        var endless = new WyomingEventReader(new EndlessStream((byte)'x'), Limits);
        e = await Assert.ThrowsAsync<WyomingProtocolException>(async () => await endless.ReadAsync(TestContext.Current.CancellationToken));
        Assert.Equal(WyomingEventReader.CodeHeaderTooLong, e.Code);
    }

    [Fact]
    public async Task Duplicate_keys_take_the_last_value_as_python_does()
    {
        WyomingEvent e = Assert.Single(await ReadAll(Bytes("""{"type":"a","type":"b","data":{"text":"1","text":"2"}}""" + "\n")));
        Assert.Equal("b", e.Type);
        Assert.Equal("2", e.String("text"));
    }

    /// <summary>Hands out at most <c>chunk</c> bytes per read, as a network does.</summary>
    private sealed class ChunkedStream(byte[] bytes, int chunk) : MemoryStream(bytes)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, chunk));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, chunk)], cancellationToken);
    }

    private sealed class EndlessStream(byte value) : Stream
    {
        public long Served { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Served; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            Array.Fill(buffer, value, offset, count);
            Served += count;
            if (Served > 1 << 20) throw new InvalidOperationException("the reader kept reading past its limit");
            return count;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long length) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
