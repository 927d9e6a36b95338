using System.Collections.Concurrent;
using System.Text.Json;
using System.Text;

namespace EdgeSlm.EdgeModule.Tests.Support;

/// <summary>
/// Counts the answers on one topic by request id as they arrive: how many distinct requests were answered and
/// how many answers repeated an id already answered (duplicates, which QoS 1 allows after a crash).
/// </summary>
public sealed class AnswerTally
{
    private readonly ConcurrentDictionary<string, int> _answers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _sentAt = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<double> _latencies = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private long _total;

    public AnswerTally(TestClient client, string topic)
    {
        client.MessageReceived += m =>
        {
            if (m.Topic != topic) return;
            using JsonDocument json = JsonDocument.Parse(m.Payload);
            string id = json.RootElement.TryGetProperty("id", out JsonElement e) && e.ValueKind == JsonValueKind.String ? e.GetString()! : "";
            if (_answers.AddOrUpdate(id, 1, (_, n) => n + 1) == 1 && _sentAt.TryGetValue(id, out long sent))
            {
                _latencies.Enqueue(System.Diagnostics.Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
            }
            Interlocked.Increment(ref _total);
            _arrived.Release();
        };
    }

    public int Distinct => _answers.Count;
    public long Total => Interlocked.Read(ref _total);
    public long Duplicates => Total - Distinct;
    public IReadOnlyCollection<string> Ids => _answers.Keys.ToArray();

    /// <summary>End-to-end milliseconds from publishing a request to its first answer, for the requests sent through <see cref="PublishAsync"/>.</summary>
    public double[] Latencies => _latencies.ToArray();

    /// <summary>Publishes <c>{"id", "text"}</c> and notes when, for the latency.</summary>
    public Task PublishAsync(TestClient client, string topic, string id, string text)
    {
        _sentAt[id] = System.Diagnostics.Stopwatch.GetTimestamp();
        return client.PublishAsync(topic, Request(id, text));
    }

    /// <summary>Waits until <paramref name="distinct"/> requests have been answered, or fails after <paramref name="timeout"/>.</summary>
    public async Task WaitForAsync(int distinct, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (Distinct < distinct)
        {
            try
            {
                await _arrived.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds} s waiting for {what}: {Distinct} of {distinct} answered ({Duplicates} duplicates)");
            }
        }
    }

    public static string Request(string id, string text)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteString("id", id);
            writer.WriteString("text", text);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
