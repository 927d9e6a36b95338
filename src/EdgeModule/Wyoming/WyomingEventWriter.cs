using System.Buffers;
using System.Text.Json;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>
/// Writes Wyoming events as the reference implementation does: a header line with <c>type</c>, <c>version</c> and
/// the lengths, then the data as its own JSON object (<c>data_length</c> bytes, left out when empty), then the payload.
/// </summary>
public static class WyomingEventWriter
{
    /// <summary>The protocol version sent in every header: that of the reference implementation this module is tested against (python3-wyoming in .ci/wyoming.sh).</summary>
    public const string ProtocolVersion = "1.6.2";

    /// <summary>Text as it is (the reference writes JSON without ASCII escapes too); newlines are always escaped, so a header stays one line.</summary>
    internal static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The event's bytes, header line to payload.</summary>
    public static byte[] ToBytes(WyomingEvent message)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        Write(buffer, message);
        return buffer.WrittenSpan.ToArray();
    }

    public static void Write(IBufferWriter<byte> output, WyomingEvent message)
    {
        byte[]? data = null;
        if (message.Data.Count > 0)
        {
            var dataBuffer = new ArrayBufferWriter<byte>(256);
            using (var writer = new Utf8JsonWriter(dataBuffer, JsonOptions))
            {
                writer.WriteStartObject();
                foreach ((string key, JsonElement value) in message.Data)
                {
                    writer.WritePropertyName(key);
                    value.WriteTo(writer);
                }
                writer.WriteEndObject();
            }
            data = dataBuffer.WrittenSpan.ToArray();
        }
        using (var writer = new Utf8JsonWriter(output, JsonOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("type", message.Type);
            writer.WriteString("version", ProtocolVersion);
            if (data is not null) writer.WriteNumber("data_length", data.Length);
            if (message.Payload is { Length: > 0 } payload) writer.WriteNumber("payload_length", payload.Length);
            writer.WriteEndObject();
        }
        output.Write("\n"u8);
        if (data is not null) output.Write(data);
        if (message.Payload is { Length: > 0 }) output.Write(message.Payload);
    }

    /// <summary>Writes the whole event with one write call (one TCP segment for a small answer, not four).</summary>
    public static async ValueTask WriteAsync(Stream stream, WyomingEvent message, CancellationToken cancellation = default)
    {
        await stream.WriteAsync(ToBytes(message), cancellation);
    }
}
