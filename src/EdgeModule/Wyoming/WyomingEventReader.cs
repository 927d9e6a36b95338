using System.Text.Json;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>How big one event may be; what is larger is refused before it is read.</summary>
/// <param name="MaxHeaderBytes">The header line, newline excluded (data placed in the header counts here).</param>
/// <param name="MaxDataBytes">The <c>data_length</c> bytes of JSON after the header.</param>
/// <param name="MaxPayloadBytes">The <c>payload_length</c> bytes after the data.</param>
public readonly record struct WyomingLimits(int MaxHeaderBytes, int MaxDataBytes, int MaxPayloadBytes);

/// <summary>What the peer sent cannot be read as an event. <see cref="Code"/> is the <c>error</c> event's code.</summary>
public sealed class WyomingProtocolException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}

/// <summary>
/// Reads Wyoming events from a stream, as OHF-Voice/wyoming frames them: a JSON header line (<c>type</c>,
/// optional <c>data</c>, <c>data_length</c>, <c>payload_length</c>; other keys such as <c>version</c> are ignored),
/// then <c>data_length</c> bytes of a JSON object whose keys replace the header's <c>data</c> keys, then
/// <c>payload_length</c> bytes of payload. Every length is checked against <see cref="WyomingLimits"/> before
/// anything is allocated for it. After a <see cref="WyomingProtocolException"/> the stream is out of step and must
/// be closed.
/// </summary>
public sealed class WyomingEventReader
{
    public const string CodeHeaderTooLong = "header-too-long";
    public const string CodeHeaderInvalid = "header-invalid";
    public const string CodeDataTooLong = "data-too-long";
    public const string CodeDataInvalid = "data-invalid";
    public const string CodePayloadTooLong = "payload-too-long";

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    private readonly Stream _stream;
    private readonly WyomingLimits _limits;
    private readonly byte[] _buffer;
    private int _start, _end;

    public WyomingEventReader(Stream stream, WyomingLimits limits)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (limits.MaxHeaderBytes is < 1 or > 64 * 1024 * 1024 || limits.MaxDataBytes < 0 || limits.MaxPayloadBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(limits), limits, "the header limit must be 1 byte to 64 MiB (the line is buffered whole) and the others not negative");
        }
        _stream = stream;
        _limits = limits;
        // Room for the longest header and its newline (a trailing '\r' is tolerated and counts too).
        _buffer = new byte[Math.Max(limits.MaxHeaderBytes + 2, 4096)];
    }

    /// <summary>True when bytes of an event that has not been read yet are buffered.</summary>
    public bool HasBufferedBytes => _end > _start;

    /// <summary>The next event, or null when the stream ended cleanly between events.</summary>
    /// <exception cref="WyomingProtocolException">The event is malformed or over a limit.</exception>
    /// <exception cref="EndOfStreamException">The stream ended inside an event.</exception>
    public async ValueTask<WyomingEvent?> ReadAsync(CancellationToken cancellation = default)
    {
        int lineLength = await ReadLineAsync(cancellation);
        if (lineLength < 0)
        {
            return null;
        }
        ReadOnlyMemory<byte> line = _buffer.AsMemory(_start, lineLength);
        if (line.Length > 0 && line.Span[^1] == (byte)'\r')
        {
            line = line[..^1];
        }
        Header header = ParseHeader(line);
        _start += lineLength + 1;

        Dictionary<string, JsonElement> data = header.Data;
        if (header.DataLength > 0)
        {
            byte[] dataBytes = await ReadExactlyAsync(header.DataLength, cancellation);
            MergeObject(dataBytes, data, CodeDataInvalid, "the data after the header");
        }
        byte[]? payload = header.PayloadLength > 0 ? await ReadExactlyAsync(header.PayloadLength, cancellation) : null;
        return new WyomingEvent(header.Type, data, payload);
    }

    private readonly record struct Header(string Type, Dictionary<string, JsonElement> Data, int DataLength, int PayloadLength);

    private Header ParseHeader(ReadOnlyMemory<byte> line)
    {
        var data = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        string? type = null;
        long dataLength = 0, payloadLength = 0;
        try
        {
            using JsonDocument document = JsonDocument.Parse(line, DocumentOptions);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new WyomingProtocolException(CodeHeaderInvalid, $"the header is a JSON {Kind(document.RootElement)}, not an object");
            }
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                // Later duplicates win, as in Python's json module.
                switch (property.Name)
                {
                    case "type":
                        type = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : null;
                        break;
                    case "data" when property.Value.ValueKind == JsonValueKind.Null:
                        data.Clear();
                        break;
                    case "data" when property.Value.ValueKind == JsonValueKind.Object:
                        data.Clear();
                        foreach (JsonProperty item in property.Value.EnumerateObject())
                        {
                            data[item.Name] = item.Value.Clone();
                        }
                        break;
                    case "data":
                        throw new WyomingProtocolException(CodeHeaderInvalid, $"\"data\" in the header is a JSON {Kind(property.Value)}, not an object");
                    case "data_length":
                        dataLength = Length(property.Value, "data_length");
                        break;
                    case "payload_length":
                        payloadLength = Length(property.Value, "payload_length");
                        break;
                }
            }
        }
        catch (JsonException e)
        {
            throw new WyomingProtocolException(CodeHeaderInvalid, $"the header line is not JSON ({e.Message})");
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json parses an escaped lone surrogate ("\ud800") and throws only when the string is read.
            throw new WyomingProtocolException(CodeHeaderInvalid, "the header has a string that is not valid UTF-16 (an escaped lone surrogate)");
        }
        if (string.IsNullOrEmpty(type))
        {
            throw new WyomingProtocolException(CodeHeaderInvalid, "the header has no \"type\" string");
        }
        if (dataLength > _limits.MaxDataBytes)
        {
            throw new WyomingProtocolException(CodeDataTooLong, $"data_length {dataLength} is over the limit of {_limits.MaxDataBytes} bytes (Wyoming:MaxDataBytes)");
        }
        if (payloadLength > _limits.MaxPayloadBytes)
        {
            throw new WyomingProtocolException(CodePayloadTooLong, $"payload_length {payloadLength} is over the limit of {_limits.MaxPayloadBytes} bytes (Wyoming:MaxPayloadBytes)");
        }
        return new Header(type, data, (int)dataLength, (int)payloadLength);
    }

    private static long Length(JsonElement value, string name) => value.ValueKind switch
    {
        JsonValueKind.Null => 0,
        JsonValueKind.Number when value.TryGetInt64(out long length) && length >= 0 => length,
        _ => throw new WyomingProtocolException(CodeHeaderInvalid, $"\"{name}\" is not a whole number of bytes"),
    };

    private static void MergeObject(byte[] json, Dictionary<string, JsonElement> data, string code, string what)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(json, DocumentOptions);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new WyomingProtocolException(code, $"{what} is a JSON {Kind(document.RootElement)}, not an object");
            }
            foreach (JsonProperty item in document.RootElement.EnumerateObject())
            {
                data[item.Name] = item.Value.Clone();
            }
        }
        catch (JsonException e)
        {
            throw new WyomingProtocolException(code, $"{what} is not JSON ({e.Message})");
        }
        catch (InvalidOperationException)
        {
            throw new WyomingProtocolException(code, $"{what} has a key that is not valid UTF-16 (an escaped lone surrogate)");
        }
    }

    private static string Kind(JsonElement element) => element.ValueKind.ToString().ToLowerInvariant();

    /// <summary>Length of the next line (without its '\n'), buffered at <see cref="_start"/>; -1 at a clean end.</summary>
    private async ValueTask<int> ReadLineAsync(CancellationToken cancellation)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        int scanned = 0;
        while (true)
        {
            int newline = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                int length = scanned + newline;
                if (length > _limits.MaxHeaderBytes + 1 || (length == _limits.MaxHeaderBytes + 1 && _buffer[_start + length - 1] != (byte)'\r'))
                {
                    throw HeaderTooLong();
                }
                return length;
            }
            scanned = _end - _start;
            if (scanned > _limits.MaxHeaderBytes + 1)
            {
                throw HeaderTooLong();
            }
            if (_end == _buffer.Length)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, scanned);
                _end = scanned;
                _start = 0;
            }
            int read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellation);
            if (read == 0)
            {
                if (scanned == 0)
                {
                    return -1;
                }
                throw new EndOfStreamException($"the stream ended inside a header line ({scanned} bytes without a newline)");
            }
            _end += read;
        }
    }

    private WyomingProtocolException HeaderTooLong() =>
        new(CodeHeaderTooLong, $"the header line is over the limit of {_limits.MaxHeaderBytes} bytes (Wyoming:MaxHeaderBytes)");

    private async ValueTask<byte[]> ReadExactlyAsync(int count, CancellationToken cancellation)
    {
        var result = new byte[count];
        int buffered = Math.Min(count, _end - _start);
        _buffer.AsSpan(_start, buffered).CopyTo(result);
        _start += buffered;
        if (buffered < count)
        {
            try
            {
                await _stream.ReadExactlyAsync(result.AsMemory(buffered), cancellation);
            }
            catch (EndOfStreamException)
            {
                throw new EndOfStreamException($"the stream ended inside an event ({count} bytes of data or payload announced)");
            }
        }
        return result;
    }
}
